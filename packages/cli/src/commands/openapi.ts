import { resolve } from 'node:path';
import type { Command } from 'commander';
import { UsageError } from '../errors.ts';

/**
 * `dirsync openapi --write <dir>`: writes the OpenAPI document the API serves and the JSON
 * Schemas published with it; `--check <dir>` fails when the committed ones differ. Needs neither
 * PostgreSQL nor Redis.
 */
export function registerOpenApiCommand(program: Command): void {
  program
    .command('openapi')
    .description('write (or check) the published OpenAPI document and JSON Schemas (docs/api)')
    .option('--write <dir>', 'write the documents into this directory')
    .option('--check <dir>', 'fail when the documents in this directory are not the current ones')
    .action(async (flags: { write?: string; check?: string }) => {
      if ((flags.write === undefined) === (flags.check === undefined)) throw new UsageError('give one of --write <dir> or --check <dir>');
      // Builds the API server to read its document: loaded only for this command.
      const { openApiWriteCommand, servedOpenApi, stalePublishedDocuments, writePublishedDocuments } = await import('../openapi.ts');
      const served = await servedOpenApi();
      let failure: string | undefined;
      if (flags.write !== undefined) {
        const files = await writePublishedDocuments(resolve(flags.write), served);
        process.stdout.write(`${files.map((file) => `wrote ${flags.write}/${file}`).join('\n')}\n`);
      } else {
        const stale = await stalePublishedDocuments(resolve(flags.check ?? '.'), served);
        if (stale.length > 0) failure = `out of date: ${stale.join(', ')}: run ${openApiWriteCommand} and commit`;
        else process.stdout.write('the published API documents are current\n');
      }
      // The API's queue clients keep a reconnect timer for the Redis that is deliberately not
      // there after they are closed; nothing else is pending, so the command ends here.
      if (failure !== undefined) process.stderr.write(`dirsync: ${failure}\n`);
      process.exit(failure === undefined ? 0 : 1);
    });
}
