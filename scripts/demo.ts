// The demo: the whole path in throw-away network namespaces. Builds the lab, starts a token server
// (oidc-provider) and an upstream in `net`, installs the rules in `app`, starts the dataplane with
// one OAuth-protected destination, and shows the app's plain `curl http://orders/...` arriving at
// the upstream with a bearer token it never saw. Everything is removed at the end.
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLab, cleanupStaleLabs, type Background, type Lab } from '../test/lab/lab.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DETOUR = join(REPO, 'bin', 'detour.js');
const PEERS = join(REPO, 'dist', 'test', 'peers');
const APP_UID = 1000;
const DATAPLANE_UID = 5678;
const UPSTREAM = '198.51.100.10';

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

const DESTINATIONS = `- Name: orders
  Type: HTTP
  URL: http://${UPSTREAM}:8080/api
  ProxyType: Internet
  Authentication: OAuth2ClientCredentials
  tokenServiceURL: http://${UPSTREAM}:9000/oauth/token
  clientId: orders-client
  clientSecret: demo-secret-never-shown
  URL.headers.x-api-version: "2"
`;

async function main(): Promise<void> {
  cleanupStaleLabs();
  say('Building the lab: namespace "app" (the pod/VM) and "net" (the world)');
  const lab = await createLab();
  const background: Background[] = [];
  try {
    show(`app namespace: ${lab.app}\nnet namespace: ${lab.net}`);
    chmodSync(lab.dir, 0o755);
    const dir = join(lab.dir, 'detour');
    mkdirSync(dir, { mode: 0o755 });
    const destinations = join(dir, 'destinations.yaml');
    writeFileSync(destinations, DESTINATIONS);

    say(
      `Starting peers in net: an upstream that echoes what it receives (${UPSTREAM}:8080) and an OAuth server (oidc-provider, :9000)`,
    );
    const peer = (script: string, args: string[], ready: RegExp) => {
      const bg = lab.spawn('net', ['node', join(PEERS, script), ...args]);
      background.push(bg);
      return bg.waitFor(ready, 15000);
    };
    await peer('echo-upstream-cli.js', [UPSTREAM, '8080'], /echo ready/);
    await peer(
      'oauth-server-cli.js',
      [
        JSON.stringify({
          host: UPSTREAM,
          port: 9000,
          clients: [
            {
              clientId: 'orders-client',
              clientSecret: 'demo-secret-never-shown',
              grantTypes: ['client_credentials'],
            },
          ],
        }),
      ],
      /oauth ready/,
    );
    show(
      `destination file (SAP Destination service properties):\n${DESTINATIONS.replace('demo-secret-never-shown', '********')}`,
    );

    await step(lab, 'Installing the transparent proxy in app: all TCP to port 15001, DNS to port 15053', [
      'node',
      DETOUR,
      'install',
      'transparent-proxy',
      '--redirect-dns',
      '--validate',
    ]);

    say(`Starting the dataplane in app as UID ${DATAPLANE_UID} (its own traffic is never redirected)`);
    const dataplane = lab.spawn('app', [
      'node',
      DETOUR,
      'dataplane',
      '--user',
      `${DATAPLANE_UID}`,
      '--destinations',
      destinations,
    ]);
    background.push(dataplane);
    await dataplane.waitFor(/"msg":"ready"/, 20000);
    show(
      dataplane
        .output()
        .trim()
        .split('\n')
        .filter((l) => /ready|destinations changed/.test(l))
        .join('\n'),
    );

    await step(
      lab,
      'The app resolves the destination name: the embedded DNS answers with a VIP',
      ['dig', '+short', 'orders'],
      APP_UID,
    );
    const answer = await step(
      lab,
      `The app (UID ${APP_UID}) calls plain http://orders/items — no token, no proxy settings`,
      ['curl', '-sS', '--max-time', '10', 'http://orders/items?page=1'],
      APP_UID,
    );
    const seen = JSON.parse(answer) as { path: string; headers: [string, string][] };
    const auth = seen.headers.find(([n]) => n.toLowerCase() === 'authorization')?.[1] ?? '';
    if (!auth.startsWith('Bearer ')) throw new Error('the upstream did not receive a bearer token');
    say('What happened');
    show(
      `- curl asked DNS for "orders"; the rules sent the query to the dataplane, which answered with a VIP.`,
    );
    show(`- curl connected to that VIP; the rules redirected the connection to the dataplane on port 15001,`);
    show(`  which read the original destination (SO_ORIGINAL_DST), found the destination "orders",`);
    show(`  fetched a token from the OAuth server (client credentials) and forwarded the request:`);
    show(`  the upstream saw ${seen.path} with Authorization: ${auth.slice(0, 16)}… and x-api-version: 2.`);
    show(`- The app never held the client secret; the dataplane's /config shows it redacted:`);
    await step(lab, 'The admin endpoint', [
      'sh',
      '-c',
      'curl -sS http://127.0.0.1:9901/config | grep -E "clientSecret|ipv4"',
    ]);

    await dataplane.stop();
    await step(lab, 'Uninstalling: exactly what install added is removed', [
      'node',
      DETOUR,
      'uninstall',
      'transparent-proxy',
    ]);
  } finally {
    for (const bg of background) await bg.stop();
    await lab.destroy();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`demo failed: ${(error as Error).message}\n`);
  process.exit(1);
});
