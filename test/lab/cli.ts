// `node dist/test/lab/cli.js up [--no-ipv6] [--onprem]`: brings a lab up, prints it as JSON, and keeps it until
// SIGINT or SIGTERM, then destroys it. `clean`: removes leftovers of labs whose process is gone.
import { cleanupStaleLabs, createLab } from './lab.js';

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === 'clean') {
    const removed = cleanupStaleLabs();
    console.log(JSON.stringify({ removed }));
    return 0;
  }
  if (cmd !== 'up') {
    console.error('usage: cli.js up [--no-ipv6] [--onprem] | clean');
    return 2;
  }
  cleanupStaleLabs();
  const lab = await createLab({ ipv6: !rest.includes('--no-ipv6'), onprem: rest.includes('--onprem') });
  const { id, app, net, onprem, addr, ipv6, interfaces, dir } = lab;
  console.log(JSON.stringify({ id, app, net, onprem, addr, ipv6, interfaces, dir }, null, 2));
  // Signal listeners alone do not keep Node running; the interval does, until a signal arrives.
  const keepAlive = setInterval(() => {}, 1 << 30);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  clearInterval(keepAlive);
  await lab.destroy();
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  },
);
