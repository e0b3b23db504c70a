import { type Command, InvalidArgumentError, Option } from 'commander';

/** `dirsync demo`: the end-to-end demonstration behind `npm run demo`. */
export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('sync a throwaway OpenLDAP directory through a real scheduler and worker, and print the reports')
    .option('--users <n>', 'users in the generated directory', '3000')
    .option('--groups <n>', 'groups', '40')
    .option('--members <n>', 'members per group', '60')
    .option('--entra', 'sync an emulated Microsoft Entra ID tenant through a connector instead (consent, Graph delta, certificate rotation)')
    .option(
      '--realistic',
      'with --entra: the emulated tenant behaves as a real one at its most difficult (permission and key propagation, replication lag, split groups, partial and repeated records, throttling)',
    )
    .option(
      '--console',
      'run the directories (LDAP, Samba AD when installed, an emulated Entra ID tenant with a legacy integration to migrate), the API with the console, a scheduler and a worker until Ctrl-C, and print a sign-in link',
    )
    .option('--port <n>', 'with --console: the port of the API and the console (default: a free one)')
    // Lets the demo's own tests make one of its processes fail at start (an invalid setting):
    // the demo must then stop at once and say which process exited and why.
    .addOption(new Option('--break-service <name>', 'start this process of the demo with an invalid setting').choices(['scheduler', 'worker', 'api']).hideHelp())
    .action(async (flags: { users: string; groups: string; members: string; entra?: boolean; realistic?: boolean; console?: boolean; port?: string; breakService?: string }) => {
      const say = (line: string) => console.log(line);
      const size = { users: Number(flags.users), groups: Number(flags.groups), members: Number(flags.members) };
      const port = flags.port === undefined ? undefined : Number(flags.port);
      if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535)) throw new InvalidArgumentError('--port must be 1–65535');
      if (port !== undefined && !flags.console) throw new InvalidArgumentError('--port applies to the console demo: add --console');
      if (flags.realistic && !flags.entra) throw new InvalidArgumentError('--realistic applies to the Entra ID demo: add --entra');
      // The scenarios, and the testkit's directories they start, load only when the demo runs:
      // every other command of `bin/dirsync` (a worker above all) would otherwise carry them.
      if (flags.console) {
        if (flags.entra) throw new InvalidArgumentError('--console runs every kind of directory, Entra ID included: leave out --entra');
        const { consoleDemo } = await import('./demo-console.ts');
        await consoleDemo(size, { port, breakService: flags.breakService }, say);
        return;
      }
      const [{ inDemoRun }, { entraDemo, ldapDemo }] = await Promise.all([import('./demo-run.ts'), import('./demo-scenarios.ts')]);
      if (flags.entra) {
        await inDemoRun(say, (run, ctx, watch) => entraDemo(run, ctx, watch, size, flags.realistic === true, flags.breakService, say));
        return;
      }
      await inDemoRun(say, (run, ctx, watch) => ldapDemo(run, ctx, watch, size, flags.breakService, say));
    });
}
