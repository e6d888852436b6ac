// The smallest keyrot handler in JavaScript: it reads one optional setting,
// logs the new key's id, and succeeds. Copy it to start your own.
import { get } from 'wasi:config/store@0.2.0-rc.1';
import { log } from 'wasi:logging/logging@0.1.0-draft';

export const handler = {
  describe() {
    return {
      name: 'js-hello',
      version: '0.1.0',
      description: "Logs the new key's id; stores it nowhere (a demo).",
      settings: [
        { name: 'greeting', description: 'Word to log before the key id, e.g. hello', required: false, secret: false },
      ],
      // No files, no network: nothing to ask the operator for.
      needs: { hosts: [], directories: [], memoryMib: undefined, timeoutSeconds: undefined },
    };
  },

  // Return to succeed; throw a string to fail with that message.
  preflight(rotation) {
    const current = rotation.currentKeyId ?? 'none';
    log('info', 'preflight', `ready to replace key ${current} of ${rotation.userName}`);
  },

  handle(rotation, key) {
    const greeting = get('greeting') ?? 'hello';
    log('info', 'handle', `${greeting}, new key ${key.accessKeyId} (created ${key.createDate})`);
  },
};
