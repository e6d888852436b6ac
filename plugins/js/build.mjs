// Builds keyrot's JavaScript handlers into components with ComponentizeJS:
//   plugins/js-hello/handler.js  -> plugins/target/components/js-hello.wasm
//   plugins/circleci/handler.js  -> plugins/target/components/circleci.wasm
// Run by scripts/build-plugins-js.sh (after `npm ci` here). Usage:
//   node build.mjs [js-hello|circleci]...   (default: all)

import { componentize } from '@bytecodealliance/componentize-js';
import { cp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const out = join(root, 'plugins/target/components');
const work = join(root, 'plugins/target/js-wit');

// The WASI version StarlingMonkey (inside ComponentizeJS 0.23) imports
// wasi:http at. A plugin that also imports wasi:http itself must name the
// same version, or the component would import two of them.
const ENGINE_WASI = '0.2.10';

const plugins = {
  // The README's example: settings and logging only. Without the `http`
  // feature the engine does not import wasi:http, so keyrot runs it with no
  // --allow-host.
  'js-hello': {
    source: 'plugins/js-hello/handler.js',
    wit: () => join(root, 'wit'),
    world: 'keyrot:handler/new-key-handler',
    disableFeatures: ['http', 'fetch-event'],
  },
  // fetch() for its requests, plus wasi:http/outgoing-handler imported
  // directly to learn why a request failed (see plugins/circleci/http.js).
  circleci: {
    source: 'plugins/circleci/handler.js',
    wit: () => assembleWit('circleci'),
    world: 'keyrot:circleci/circleci',
    disableFeatures: ['fetch-event'],
  },
};

const names = process.argv.slice(2);
for (const name of names) {
  if (!(name in plugins)) {
    console.error(`unknown JS plugin '${name}' (${Object.keys(plugins).join(', ')})`);
    process.exit(2);
  }
}
await mkdir(out, { recursive: true });
for (const name of names.length > 0 ? names : Object.keys(plugins)) {
  const plugin = plugins[name];
  const started = Date.now();
  const source = join(root, plugin.source);
  // ComponentizeJS maps the current directory into the engine when it
  // contains the source, and strips it from the path with a plain prefix
  // test: run from the plugin's own directory, or a sibling whose name
  // starts with this directory's (plugins/js-hello vs plugins/js) confuses it.
  process.chdir(dirname(source));
  const { component } = await componentize({
    sourcePath: source,
    witPath: await plugin.wit(),
    worldName: plugin.world,
    disableFeatures: plugin.disableFeatures,
  });
  const file = join(out, `${name}.wasm`);
  await writeFile(file, component);
  const mib = (component.length / 1024 / 1024).toFixed(1);
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`built ${file.slice(root.length + 1)} (${mib} MiB) in ${seconds}s`);
}

/**
 * A WIT folder for a plugin that imports more than keyrot's world: the
 * plugin's own world (plugins/NAME/wit/world.wit, which includes
 * keyrot:handler/new-key-handler) at the top, keyrot's public WIT and the
 * WASI packages it adds under deps/. keyrot's WIT is the contract version
 * the world includes: wit/ for the current one, its frozen copy
 * wit/VERSION/ for an older one keyrot still loads. The WASI packages are
 * jco's copies (pinned by package-lock.json), relabelled to the engine's
 * version: the interfaces are the same across 0.2.x releases.
 */
async function assembleWit(name) {
  const dir = join(work, name);
  const world = join(root, 'plugins', name, 'wit/world.wit');
  const keyrot = await keyrotWit(world);
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, 'deps/keyrot-handler'), { recursive: true });
  await cp(world, join(dir, 'world.wit'));
  await cp(join(keyrot, 'handler.wit'), join(dir, 'deps/keyrot-handler/handler.wit'));
  await cp(join(keyrot, 'deps'), join(dir, 'deps'), { recursive: true });
  const jcoWit = join(here, 'node_modules/@bytecodealliance/jco/lib/wit/builtin/0.2.12');
  for (const pkg of await readdir(jcoWit)) {
    const text = await readFile(join(jcoWit, pkg, 'package.wit'), 'utf8');
    await mkdir(join(dir, 'deps', pkg), { recursive: true });
    await writeFile(join(dir, 'deps', pkg, 'package.wit'), text.replaceAll('@0.2.12', `@${ENGINE_WASI}`));
  }
  return dir;
}

/** keyrot's WIT folder for the contract version the world file includes. */
async function keyrotWit(world) {
  const want = /include keyrot:handler\/new-key-handler@([0-9.]+);/.exec(await readFile(world, 'utf8'))?.[1];
  const current = /^package keyrot:handler@([0-9.]+);/m.exec(
    await readFile(join(root, 'wit/handler.wit'), 'utf8'),
  )?.[1];
  if (want === current) return join(root, 'wit');
  const frozen = join(root, 'wit', want ?? '?');
  try {
    await readFile(join(frozen, 'handler.wit'));
  } catch {
    throw new Error(`${world} includes keyrot:handler@${want}, which is neither wit/ (${current}) nor in wit/VERSION/`);
  }
  return frozen;
}
