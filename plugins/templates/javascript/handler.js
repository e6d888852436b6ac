// keyrot-template: a keyrot new-key handler. It writes the new key to the
// file the `path` setting names, as AWS_ACCESS_KEY_ID=... and
// AWS_SECRET_ACCESS_KEY=... lines (a .env file a shell can source), and
// refuses to overwrite a file that holds a key it was not told about.
// Replace `store` and `heldKeyId` with your own destination.
//
// WIT names are camelCase here (currentKeyId, accessKeyId); an absent
// option is undefined. A function fails by throwing a string: keyrot shows
// it. Anything else thrown (an Error) is a crash.
import { get } from 'wasi:config/store@0.2.0-rc.1';
import { log } from 'wasi:logging/logging@0.1.0-draft';
import { getDirectories } from 'wasi:filesystem/preopens@0.2.12';

export const handler = {
  // What keyrot shows and checks before anything runs: no I/O here.
  describe() {
    return {
      name: 'keyrot-template',
      version: '0.1.0',
      description: 'Writes the new key to a file (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY lines)',
      settings: [
        {
          name: 'path',
          description: 'The file to write, in a directory granted with --allow-dir, e.g. /data/aws.env',
          required: true,
          secret: false,
        },
      ],
      needs: {
        hosts: [],
        directories: [
          { path: '', setting: 'path', writable: true, purpose: 'holds the file the key is written to' },
        ],
        memoryMib: undefined,
        timeoutSeconds: undefined,
      },
    };
  },

  // Before any key exists: the directory is there and the file holds a key
  // keyrot expects (or nothing). Changes nothing.
  preflight(rotation) {
    const file = settingPath();
    checkHeld(file, rotation);
    log('info', 'preflight', `${file.path} is ready for the new key`);
  },

  // Stores the new key, then returns: keyrot retires the old key only after
  // that. Throwing makes keyrot delete the new key.
  handle(rotation, key) {
    const file = settingPath();
    checkHeld(file, rotation); // the file may have changed since preflight
    store(file, `AWS_ACCESS_KEY_ID=${key.accessKeyId}\nAWS_SECRET_ACCESS_KEY=${key.secretAccessKey}\n`);
    // The key id is not secret; the secret access key is never logged.
    log('info', 'handle', `wrote key ${key.accessKeyId} to ${file.path}`);
  },
};

// The `path` setting, resolved to a granted directory and a name in it.
function settingPath() {
  const path = get('path');
  if (path === undefined) throw "setting 'path' is missing: pass --config path=/data/aws.env";
  if (!path.startsWith('/') || path.endsWith('/')) {
    throw `setting 'path' must be an absolute file path, e.g. /data/aws.env, not '${path}'`;
  }
  const cut = path.lastIndexOf('/');
  const dirPath = path.slice(0, cut) || '/';
  const name = path.slice(cut + 1);
  // The granted directory that holds it (the longest match).
  let best;
  for (const [descriptor, guest] of getDirectories()) {
    const inside = dirPath === guest || dirPath.startsWith(guest.endsWith('/') ? guest : `${guest}/`);
    if (inside && (best === undefined || guest.length > best.guest.length)) best = { descriptor, guest };
  }
  if (best === undefined) throw `directory ${dirPath} not found: grant it with --allow-dir HOST_DIR:${dirPath}`;
  const sub = dirPath.slice(best.guest.length).replace(/^\/+/, '');
  let dir = best.descriptor;
  if (sub !== '') {
    try {
      dir = dir.openAt({ symlinkFollow: false }, sub, { directory: true }, { read: true, mutateDirectory: true });
    } catch (e) {
      throw `directory ${dirPath} not found (${errorCode(e)}): grant it with --allow-dir HOST_DIR:${dirPath}`;
    }
  }
  return { path, dir, name };
}

// Refuses a file that holds a key other than the current one or one an
// interrupted keyrot run left there.
function checkHeld(file, rotation) {
  const held = heldKeyId(file);
  const expected = [rotation.currentKeyId, ...rotation.abandonedKeyIds].filter((id) => id !== undefined);
  if (held === undefined || expected.includes(held)) return;
  throw (
    `${file.path} holds key ${held}, not ${expected.join(' or ') || 'nothing'}: refusing to overwrite ` +
    "a key keyrot did not rotate (point 'path' at another file, or remove this one)"
  );
}

// The key id the file holds, or undefined if the file does not exist.
function heldKeyId(file) {
  let text;
  try {
    const f = file.dir.openAt({ symlinkFollow: false }, file.name, {}, { read: true });
    const chunks = [];
    for (let offset = 0n; ; ) {
      const [bytes, end] = f.read(65536n, offset);
      chunks.push(...bytes);
      offset += BigInt(bytes.length);
      if (end || bytes.length === 0) break;
    }
    text = new TextDecoder().decode(new Uint8Array(chunks));
  } catch (e) {
    if (errorCode(e) === 'no-entry') return undefined;
    throw `cannot read ${file.path}: ${errorCode(e)}`;
  }
  const line = text.split('\n').find((l) => l.startsWith('AWS_ACCESS_KEY_ID='));
  return line?.slice('AWS_ACCESS_KEY_ID='.length).trim();
}

// Replaces the file atomically: a temporary file beside it, synced, then
// renamed over it. Readers see the old file or the new one, never half.
function store(file, content) {
  const temp = `${file.name}.keyrot-tmp`;
  try {
    file.dir.unlinkFileAt(temp); // left by an interrupted run
  } catch {}
  try {
    const f = file.dir.openAt({ symlinkFollow: false }, temp, { create: true, exclusive: true }, { write: true });
    const bytes = new TextEncoder().encode(content);
    for (let done = 0; done < bytes.length; ) {
      done += Number(f.write(bytes.subarray(done), BigInt(done)));
    }
    f.sync();
    file.dir.renameAt(temp, file.dir, file.name);
  } catch (e) {
    try {
      file.dir.unlinkFileAt(temp);
    } catch {}
    throw `cannot write ${file.path}: ${errorCode(e)}`;
  }
}

// The wasi:filesystem error code of a failed call, e.g. 'no-entry'.
function errorCode(e) {
  return e?.payload ?? String(e);
}
