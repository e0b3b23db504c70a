import type { MappedSample, PreviewResult } from '@dirsync/contracts';
import type { CanonicalObject, JsonValue, Provider } from '../types.ts';

/** Largest sample shown (bytes of JSON); a larger one is reported as a problem instead. */
export const PREVIEW_MAX_SAMPLE_BYTES = 64 * 1024;
/** Largest whole preview (bytes of JSON of the samples). */
export const PREVIEW_MAX_BYTES = 512 * 1024;
/** Source entries a preview reads at most, samples or not (a directory whose entries all fail). */
export const PREVIEW_MAX_ENTRIES = 200;
/** Problems a preview reports at most. */
export const PREVIEW_MAX_PROBLEMS = 20;

/** A mapped object as a preview shows it: `extra` split from the other attributes. */
export function mappedSample(object: CanonicalObject): MappedSample {
  const { extra, ...attributes } = object.attributes;
  const isRecord = typeof extra === 'object' && extra !== null && !Array.isArray(extra);
  return {
    type: object.type,
    externalId: object.externalId,
    dn: object.dn ?? null,
    attributes: attributes as Record<string, JsonValue>,
    extra: isRecord ? (extra as Record<string, JsonValue>) : {},
  };
}

/**
 * Reads the first entries of a full fetch and maps them with the provider's mapping: up to
 * `limit` samples, in the order the source lists them (LDAP kinds list users before groups), and
 * the entries that could not be mapped. Stops reading as soon as it has enough (the fetch's
 * connection is closed by its generator), after {@link PREVIEW_MAX_ENTRIES} entries at most;
 * samples past {@link PREVIEW_MAX_SAMPLE_BYTES} or the whole past {@link PREVIEW_MAX_BYTES} are
 * reported as problems rather than cut, so what is shown is the mapping's real output.
 */
export async function previewProvider(provider: Provider, limit: number, signal: AbortSignal): Promise<PreviewResult> {
  const samples: MappedSample[] = [];
  const problems: PreviewResult['problems'] = [];
  const problem = (p: PreviewResult['problems'][number]) => {
    if (problems.length < PREVIEW_MAX_PROBLEMS) problems.push(p);
  };
  let bytes = 0;
  let read = 0;
  outer: for await (const page of provider.fetchFull(signal)) {
    for (const entry of page.entries) {
      if (samples.length >= limit || read >= PREVIEW_MAX_ENTRIES) break outer;
      read += 1;
      const result = provider.map(entry);
      if (!result.ok) {
        problem({ externalId: result.externalId ?? null, dn: result.dn ?? null, reason: result.reason });
        continue;
      }
      const sample = mappedSample(result.object);
      const size = Buffer.byteLength(JSON.stringify(sample));
      if (size > PREVIEW_MAX_SAMPLE_BYTES || bytes + size > PREVIEW_MAX_BYTES) {
        problem({ externalId: sample.externalId, dn: sample.dn, reason: `the mapped object has ${size} bytes, too large to show in a preview` });
        continue;
      }
      bytes += size;
      samples.push(sample);
    }
  }
  return { samples, problems };
}
