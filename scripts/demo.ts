// The demo: the whole path in throw-away network namespaces. Builds the lab, installs the rules in
// `app`, proves them, starts the dataplane, and shows an app's plain HTTP call being captured and
// forwarded to its original destination in `net`. Everything is removed at the end.
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLab, cleanupStaleLabs, type Background, type Lab } from '../test/lab/lab.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DETOUR = join(REPO, 'bin', 'detour.js');
const APP_UID = 1000;
const DATAPLANE_UID = 5678;

const say = (text: string) => process.stdout.write(`\n\x1b[1m== ${text}\x1b[0m\n`);
const show = (text: string) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);

async function step(lab: Lab, title: string, argv: string[], uid?: number): Promise<string> {
  say(title);
  show(`$ ${uid === undefined ? '' : `(uid ${uid}) `}${argv.join(' ')}`);
  const result = await lab.run('app', argv, { uid, reject: false, timeoutMs: 60000 });
  show(result.stdout + result.stderr);
  if (result.exitCode !== 0) throw new Error(`demo step failed: ${title} (exit ${result.exitCode})`);
  return result.stdout;
}

async function main(): Promise<void> {
  cleanupStaleLabs();
  say(
    'Building the lab: namespace "app" (the pod/VM, 192.0.2.2) and "net" (the world, nginx on 198.51.100.10)',
  );
  const lab = await createLab();
  let dataplane: Background | undefined;
  try {
    await lab.startHttpServer({ port: 80, body: 'hello from the upstream in net' });
    show(`app namespace: ${lab.app}\nnet namespace: ${lab.net}`);

    await step(lab, 'Installing the transparent proxy in app (iptables-nft, DNS capture on)', [
      'node',
      DETOUR,
      'install',
      'transparent-proxy',
      '--redirect-dns',
      '--verbose',
    ]);
    await step(lab, 'The rules detour added (every one carries a detour/ comment)', [
      'sh',
      '-c',
      'iptables-nft-save -t nat | grep -E "detour/|^:DETOUR"',
    ]);
    await step(lab, 'Validating: a connection to a TEST-NET address must land on port 15001', [
      'node',
      DETOUR,
      'validate',
      'transparent-proxy',
    ]);

    say(`Starting the dataplane in app as UID ${DATAPLANE_UID} (its own traffic is never redirected)`);
    dataplane = lab.spawn('app', ['node', DETOUR, 'dataplane', '--user', `${DATAPLANE_UID}`]);
    await dataplane.waitFor(/"msg":"ready"/, 20000);
    show(dataplane.output().trim());

    await step(
      lab,
      `The app (UID ${APP_UID}) calls plain http://${lab.addr.serverV4}/ — it knows nothing about detour`,
      ['curl', '-sS', '--max-time', '5', `http://${lab.addr.serverV4}/`],
      APP_UID,
    );
    say('What the dataplane saw: the connection, with its original destination recovered by SO_ORIGINAL_DST');
    await new Promise((r) => setTimeout(r, 200));
    const lines = dataplane
      .output()
      .split('\n')
      .filter((l) => l.includes('originalDestination'));
    show(lines.join('\n'));
    if (!lines.some((l) => l.includes(`"originalDestination":"${lab.addr.serverV4}:80"`))) {
      throw new Error('the dataplane did not log the connection: interception did not work');
    }

    await dataplane.stop();
    dataplane = undefined;
    await step(lab, 'Uninstalling: exactly what install added is removed', [
      'node',
      DETOUR,
      'uninstall',
      'transparent-proxy',
    ]);
    say("Done: the kernel redirected the app's TCP connection to the dataplane on 127.0.0.1:15001, the");
    show('dataplane read the original destination and forwarded the bytes there as UID 5678, which the');
    show('rules let through. Later issues put DNS names, destinations and credentials on this path.');
  } finally {
    await dataplane?.stop();
    await lab.destroy();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`demo failed: ${(error as Error).message}\n`);
  process.exit(1);
});
