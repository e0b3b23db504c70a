import { z } from 'zod';

/**
 * Attribute mapping of an integration (`settings.attributeMapping`): which source attribute
 * lands in which field of the stored attributes, with a few transforms, and extra custom
 * attributes kept under `attributes.extra`. Absent: the kind's default mapping.
 */

/** Longest regular expression a mapping may hold (characters). */
export const MAPPING_MAX_PATTERN_LENGTH = 200;
/** Characters of one source value a regular expression is run over; the rest is ignored. */
export const MAPPING_MAX_REGEX_INPUT = 256;
/** Fields one object type of a mapping may override. */
export const MAPPING_MAX_FIELDS = 64;
/** Extra attributes one object type may add. */
export const MAPPING_MAX_EXTRA = 32;
/** Transforms one rule may chain. */
export const MAPPING_MAX_TRANSFORMS = 8;
/** Longest `default` and `separator` (characters). */
export const MAPPING_MAX_DEFAULT_LENGTH = 1024;
/** Values one mapped attribute keeps at most (a multi-valued source is cut there). */
export const MAPPING_MAX_VALUES = 1000;
/**
 * Characters the rules of a mapping may produce for one object, fields and extras together; an
 * entry past it is reported as an issue rather than stored cut.
 */
export const MAPPING_MAX_OBJECT_CHARS = 64 * 1024;
/** Characters one mapped value keeps at most (longer values are cut). */
export const MAPPING_MAX_VALUE_LENGTH = 16 * 1024;
/**
 * Long quantifiers (`*`, `+`, `{n,}`, or a bound above {@link MAPPING_MAX_SHORT_REPEAT}) one pattern
 * may hold: adjacent ones that can match the same text backtrack in time polynomial in the input,
 * of a degree one more than their number (an unanchored search tries every start).
 */
export const MAPPING_MAX_UNBOUNDED_QUANTIFIERS = 2;
/** A repetition bound up to this counts as short (`\\d{1,8}`). */
export const MAPPING_MAX_SHORT_REPEAT = 16;
/**
 * Ways a pattern's quantifiers together may split a value, at most: the product over them of the
 * lengths they can vary by (a long one counting as the whole regex input). Short ones multiply
 * too: `a?` thirty times, or `a{0,16}` six times, backtracks for minutes over 256 characters
 * although none of them is long. As much as two long quantifiers make: four `a{0,16}` in a row
 * already took 0.4 s over 256 characters, ten times two long ones.
 */
export const MAPPING_MAX_BACKTRACK_PRODUCT = (MAPPING_MAX_REGEX_INPUT + 1) ** 2;

/**
 * Why a pattern is refused, or undefined when it is accepted. JavaScript's backtracking engine
 * can take exponential time on nested quantifiers (`(a+)+`), quantified alternations (`(a|a)*`)
 * and backreferences; those are refused outright, and the number of long quantifiers is capped
 * so that adjacent ones (`\s*\s*`) stay polynomial of a low degree over the bounded input
 * ({@link MAPPING_MAX_REGEX_INPUT} characters: at most a few million steps).
 */
export function unsafePatternReason(pattern: string): string | undefined {
  if (pattern.length > MAPPING_MAX_PATTERN_LENGTH) return `is longer than ${MAPPING_MAX_PATTERN_LENGTH} characters`;
  try {
    new RegExp(pattern, 'u');
  } catch (error) {
    return `is not a valid regular expression: ${error instanceof Error ? error.message : String(error)}`;
  }
  // Open groups: whether each holds a repeating quantifier or an alternation so far.
  type Group = { quantified: boolean; alternation: boolean };
  const groups: Group[] = [];
  let unbounded = 0;
  let product = 1;
  let i = 0;
  while (i < pattern.length) {
    const c = pattern[i] as string;
    // The group an atom closes, if it is a group (its contents decide what repeating it costs).
    let closed: Group | undefined;
    if (c === '\\') {
      const next = pattern[i + 1] ?? '';
      if (/[1-9]/.test(next) || next === 'k') return 'uses a backreference, which can take exponential time';
      const brace = next === 'u' || next === 'p' || next === 'P' ? pattern.indexOf('}', i) : -1;
      i = pattern[i + 2] === '{' && brace > 0 ? brace + 1 : i + 2;
    } else if (c === '[') {
      // A character class is one atom: skip to its closing bracket (escapes inside included).
      let j = i + 1;
      if (pattern[j] === '^') j += 1;
      while (j < pattern.length && pattern[j] !== ']') j += pattern[j] === '\\' ? 2 : 1;
      i = j + 1;
    } else if (c === '(') {
      if (/^\(\?<?[=!]/.test(pattern.slice(i, i + 4))) return 'uses a lookaround assertion, which mappings do not allow';
      groups.push({ quantified: false, alternation: false });
      i += pattern.startsWith('(?:', i) ? 3 : pattern.startsWith('(?<', i) ? pattern.indexOf('>', i) + 1 - i : 1;
      continue;
    } else if (c === ')') {
      closed = groups.pop();
      if (closed && groups.length > 0) {
        const parent = groups[groups.length - 1] as Group;
        parent.quantified ||= closed.quantified;
        parent.alternation ||= closed.alternation;
      }
      i += 1;
    } else if (c === '|') {
      const top = groups[groups.length - 1];
      if (top) top.alternation = true;
      i += 1;
      continue;
    } else {
      i += 1;
    }
    const q = /^(?:[*+?]|\{(\d+)(,(\d*))?\})/.exec(pattern.slice(i));
    if (!q) continue;
    const text = q[0];
    const max = q[1] === undefined ? (text === '?' ? 1 : Infinity) : q[2] === undefined ? Number(q[1]) : q[3] === '' ? Infinity : Number(q[3]);
    const repeats = max > 1;
    const min = q[1] === undefined ? (text === '+' ? 1 : 0) : Number(q[1]);
    product *= Math.min(max, MAPPING_MAX_REGEX_INPUT) - Math.min(min, MAPPING_MAX_REGEX_INPUT) + 1;
    if (repeats && closed?.quantified) return 'nests quantifiers (such as (a+)+), which can take exponential time';
    if (repeats && closed?.alternation) return 'repeats an alternation (such as (a|b)*), which can take exponential time';
    if (max !== Infinity && max > MAPPING_MAX_REGEX_INPUT) return `has a repetition bound above ${MAPPING_MAX_REGEX_INPUT}`;
    if (max > MAPPING_MAX_SHORT_REPEAT) unbounded += 1;
    if (unbounded > MAPPING_MAX_UNBOUNDED_QUANTIFIERS) {
      return `has more than ${MAPPING_MAX_UNBOUNDED_QUANTIFIERS} long quantifiers (*, +, {n,} or a bound above ${MAPPING_MAX_SHORT_REPEAT})`;
    }
    if (product > MAPPING_MAX_BACKTRACK_PRODUCT) return 'has quantifiers that together can backtrack too long over a value (such as many a? or a{0,16} in a row)';
    // Even an optional atom inside a repeated group multiplies the ways to match ((a a?)*).
    const top = groups[groups.length - 1];
    if (top) top.quantified = true;
    i += text.length;
    if (pattern[i] === '?') i += 1;
  }
  return undefined;
}

/** What every kind accepts as a source attribute name (each kind narrows it further). */
export const MAPPING_SOURCE_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,119}$/;

/** Source attribute names: LDAP attribute descriptions or Graph property names. */
const sourceName = z
  .string({ error: 'must be a string naming a source attribute' })
  .regex(MAPPING_SOURCE_NAME, 'must be a source attribute name (a letter, then letters, digits, "-" or "_"; at most 120 characters)');

/** Names of mapped fields and extra attributes. */
const fieldName = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;

/** One transform of a rule, applied in order to the list of source values. */
export const mappingTransformSchema = z.discriminatedUnion(
  'op',
  [
    /** Keeps the first value only (the result is one string). */
    z.strictObject({ op: z.literal('first') }),
    /** Lower-cases every value. */
    z.strictObject({ op: z.literal('lower') }),
    /** Joins the values into one string. */
    z.strictObject({ op: z.literal('join'), separator: z.string().max(16, 'separator must be at most 16 characters') }),
    /**
     * Keeps what the pattern matches in each value (capture group `group`; default: group 1
     * when the pattern has groups, else the whole match); values it does not match are dropped.
     */
    z.strictObject({
      op: z.literal('regex'),
      pattern: z.string().min(1, 'pattern is empty').superRefine((value, ctx) => {
        const why = unsafePatternReason(value);
        if (why !== undefined) ctx.addIssue({ code: 'custom', message: `pattern ${why}` });
      }),
      group: z.number().int().min(0).max(9).optional(),
      ignoreCase: z.boolean().optional(),
    }),
  ],
  { error: 'op must be "first", "lower", "join" or "regex"' },
);

/** A transform of a mapping rule. */
export type MappingTransform = z.infer<typeof mappingTransformSchema>;

/**
 * One mapped field: the values of source attribute `from`, through `transform` (omitted: the
 * first value only, i.e. `[{ op: 'first' }]`; an explicit list without `first` or `join` keeps
 * every value as a list), or `default` when nothing is left.
 */
export const mappingRuleSchema = z
  .strictObject({
    from: sourceName,
    transform: z.array(mappingTransformSchema).max(MAPPING_MAX_TRANSFORMS, `at most ${MAPPING_MAX_TRANSFORMS} transforms`).optional(),
    default: z.string().max(MAPPING_MAX_DEFAULT_LENGTH, `default must be at most ${MAPPING_MAX_DEFAULT_LENGTH} characters`).optional(),
  })
  .superRefine((rule, ctx) => {
    const transforms = rule.transform ?? [];
    transforms.forEach((t, i) => {
      if (t.op === 'regex' && t.group !== undefined && typeof t.pattern === 'string' && unsafePatternReason(t.pattern) === undefined) {
        const groups = new RegExp(`${t.pattern}|`, 'u').exec('')?.length ?? 1;
        if (t.group > groups - 1) ctx.addIssue({ code: 'custom', path: ['transform', i, 'group'], message: `the pattern has ${groups - 1} capture group(s), not ${t.group}` });
      }
      if (i < transforms.length - 1 && (t.op === 'first' || t.op === 'join') && transforms.slice(i + 1).some((n) => n.op === 'join' || n.op === 'first')) {
        ctx.addIssue({ code: 'custom', path: ['transform', i], message: `"${t.op}" already leaves one value: a later "first" or "join" does nothing` });
      }
    });
  });

/** A rule of a mapping. */
export type MappingRule = z.infer<typeof mappingRuleSchema>;

const fields = (max: number, what: string) =>
  z
    .record(z.string(), mappingRuleSchema)
    .superRefine((record, ctx) => {
      const names = Object.keys(record);
      if (names.length > max) ctx.addIssue({ code: 'custom', message: `at most ${max} ${what}` });
      for (const name of names) {
        if (!fieldName.test(name)) ctx.addIssue({ code: 'custom', path: [name], message: `"${name.slice(0, 80)}" is not a field name (a letter, then letters, digits or "_"; at most 64 characters)` });
      }
    });

/** Overrides of one object type: field name → rule. */
export const mappingFieldsSchema = fields(MAPPING_MAX_FIELDS, 'fields');

/** `settings.attributeMapping`. */
export const attributeMappingSchema = z.strictObject({
  user: mappingFieldsSchema.optional(),
  group: mappingFieldsSchema.optional(),
  /** Active Directory contacts only. */
  contact: mappingFieldsSchema.optional(),
  /** Extra custom attributes, stored under `attributes.extra`. */
  extra: z
    .strictObject({
      user: fields(MAPPING_MAX_EXTRA, 'extra attributes').optional(),
      group: fields(MAPPING_MAX_EXTRA, 'extra attributes').optional(),
      contact: fields(MAPPING_MAX_EXTRA, 'extra attributes').optional(),
    })
    .optional(),
});

/** An attribute mapping as stored in the settings. */
export type AttributeMapping = z.infer<typeof attributeMappingSchema>;

/** Body of `POST /v1/integrations/{id}/preview`. */
export const previewRequestSchema = z.strictObject({
  /** Objects to map (default 5). */
  limit: z.number().int().min(1).max(20).optional(),
  /**
   * An unsaved mapping to try instead of the stored one, validated like `settings.attributeMapping`
   * (problems answer 422 at their path, `attributeMapping.user.mail.from`).
   */
  attributeMapping: z.record(z.string(), z.unknown()).optional(),
});

/** Body of `POST /v1/integrations/{id}/preview`. */
export type PreviewRequest = z.infer<typeof previewRequestSchema>;

/** A JSON value, as mapped attributes hold. */
const jsonValue: z.ZodType<unknown> = z.unknown();

/** One mapped sample object: the real output of the mapping (`extra` split from the attributes). */
export const mappedSampleSchema = z.object({
  type: z.string(),
  externalId: z.string(),
  dn: z.string().nullable(),
  attributes: z.record(z.string(), jsonValue),
  extra: z.record(z.string(), jsonValue),
});

/** A mapped sample object. */
export type MappedSample = z.infer<typeof mappedSampleSchema>;

/** A source entry the mapping could not map. */
export const mappingProblemSchema = z.object({
  externalId: z.string().nullable(),
  dn: z.string().nullable(),
  reason: z.string(),
});

/** Answer of a preview: a few mapped samples and the entries that could not be mapped. */
export const previewResultSchema = z.object({
  samples: z.array(mappedSampleSchema).max(20),
  problems: z.array(mappingProblemSchema).max(20),
});

/** Answer of a preview. */
export type PreviewResult = z.infer<typeof previewResultSchema>;

/** Samples a preview shows when the request names no limit. */
export const PREVIEW_DEFAULT_LIMIT = 5;

/**
 * Data of a `preview-mapping` job on the control queue: the integration, how many samples, and
 * the unsaved mapping to try (the stored settings otherwise). No secret: the worker reads it.
 */
export const previewJobSchema = z.strictObject({
  integrationId: z.uuid(),
  requestId: z.uuid(),
  limit: z.number().int().min(1).max(20),
  attributeMapping: attributeMappingSchema.optional(),
  requestedBy: z.string().trim().min(1).max(200).optional(),
});

/** Data of a `preview-mapping` job. */
export type PreviewJobData = z.infer<typeof previewJobSchema>;
