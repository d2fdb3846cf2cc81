// Profiles a child that the bench does not start itself (startNetpin of harness/): loaded
// with NODE_OPTIONS=--import=<this file>, since node refuses --cpu-prof in NODE_OPTIONS. The first
// SIGUSR2 starts V8's sampling profiler, the second writes the profile to $NETPIN_BENCH_PROFILE:
// the profile covers exactly the window the bench measures, not the process's start.
import { renameSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';

const out = process.env.NETPIN_BENCH_PROFILE;
if (out) {
  const session = new Session();
  session.connect();
  let running = false;
  process.on('SIGUSR2', () => {
    void (async () => {
      if (!running) {
        running = true;
        await session.post('Profiler.enable');
        await session.post('Profiler.start');
        return;
      }
      const { profile } = await session.post('Profiler.stop');
      // Renamed into place, so that the bench never reads half a file.
      writeFileSync(`${out}.part`, JSON.stringify(profile));
      renameSync(`${out}.part`, out);
    })();
  });
}
