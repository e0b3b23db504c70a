import {
  type AttributeMapping,
  MAPPING_MAX_OBJECT_CHARS,
  MAPPING_MAX_REGEX_INPUT,
  MAPPING_MAX_VALUE_LENGTH,
  MAPPING_MAX_VALUES,
  type MappingRule,
  type MappingTransform,
} from '@dirsync/contracts';
import { ConfigError } from '../errors.ts';
import type { JsonValue } from '../types.ts';

/** The object types a mapping has sections for. */
export type MappedType = 'user' | 'group' | 'contact';

/**
 * The source attributes of one entry as lists of strings, looked up by the name a rule gives in
 * `from`. LDAP looks names up case-insensitively; Graph by exact property name. `undefined`: the
 * source does not carry the attribute at all (a partial Graph record), as opposed to `[]` (empty).
 */
export type SourceValues = (name: string) => readonly string[] | undefined;

type Step =
  | { readonly op: 'first' }
  | { readonly op: 'lower' }
  | { readonly op: 'join'; readonly separator: string }
  | { readonly op: 'regex'; readonly pattern: RegExp; readonly group: number };

/** A rule ready to apply: its transforms compiled once per provider, not per entry. */
export interface CompiledRule {
  readonly from: string;
  readonly steps: readonly Step[];
  /** `first` or `join` leaves one string; otherwise the result is a list. */
  readonly single: boolean;
  readonly default?: string;
}

/** One object type's part of a compiled mapping. */
export interface CompiledTypeMapping {
  /** Overridden fields, by field name. */
  readonly fields: ReadonlyMap<string, CompiledRule>;
  /** Extra attributes, by name (stored under `attributes.extra`). */
  readonly extra: ReadonlyMap<string, CompiledRule>;
  /** Time the mapping has spent so far, shared by the sections of one compiled mapping. */
  readonly spent?: MappingTimeSpent;
}

/** Milliseconds one compiled mapping (one run's provider) has spent in transforms so far. */
export interface MappingTimeSpent {
  ms: number;
}

/**
 * Milliseconds the transforms of one entry's rules may run in all. Each accepted pattern is
 * bounded over one value (milliseconds at worst), but 96 rules over 1,000 values each came to
 * minutes for one entry, with the worker's event loop blocked all along (and `lower` over 1,000
 * values of 16 KiB takes 10 ms a step); past this the entry is an issue of the run. Patterns that
 * are not pathological take microseconds per value. Checked before each step and each value a
 * pattern runs over.
 */
export const MAPPING_MAX_REGEX_MS_PER_ENTRY = 1000;

/**
 * Milliseconds the transforms of one run may take in all. The per-entry bound keeps one entry
 * from blocking the worker, but a directory of entries that each use most of it would hold a
 * shared worker for hours: past this the run fails as a configuration problem (not retried), and
 * the administrator simplifies the mapping. Ordinary mappings take microseconds per entry, a few
 * seconds for a million entries.
 */
export const MAPPING_MAX_MS_PER_RUN = 60_000;

/** The time budget of one entry's transforms was spent (see {@link applyOverrides}). */
class RegexBudgetSpent extends Error {}

/** A whole compiled mapping; an empty section (no override, no extra) maps as the default. */
export type CompiledMapping = Readonly<Record<MappedType, CompiledTypeMapping>>;

/** Number of capture groups of a pattern (a pattern that matches empty, ORed in, always matches ''). */
function groupCount(pattern: string): number {
  return (new RegExp(`${pattern}|`, 'u').exec('')?.length ?? 1) - 1;
}

function compileStep(transform: MappingTransform): Step {
  switch (transform.op) {
    case 'first':
    case 'lower':
      return { op: transform.op };
    case 'join':
      return { op: 'join', separator: transform.separator };
    case 'regex':
      return {
        op: 'regex',
        pattern: new RegExp(transform.pattern, transform.ignoreCase === true ? 'iu' : 'u'),
        group: transform.group ?? (groupCount(transform.pattern) > 0 ? 1 : 0),
      };
  }
}

/** Compiles one validated rule. Omitted `transform` means `[{ op: 'first' }]`. */
export function compileRule(rule: MappingRule): CompiledRule {
  const steps = (rule.transform ?? [{ op: 'first' as const }]).map(compileStep);
  return {
    from: rule.from,
    steps,
    single: steps.some((s) => s.op === 'first' || s.op === 'join'),
    ...(rule.default === undefined ? {} : { default: rule.default }),
  };
}

const emptyType: CompiledTypeMapping = { fields: new Map(), extra: new Map() };

/** Compiles a validated mapping (settings already passed the kind's schema). */
export function compileMapping(mapping: AttributeMapping | undefined): CompiledMapping {
  const section = (type: MappedType): CompiledTypeMapping => {
    const fields = mapping?.[type];
    const extra = mapping?.extra?.[type];
    if (fields === undefined && extra === undefined) return emptyType;
    return {
      fields: new Map(Object.entries(fields ?? {}).map(([name, rule]) => [name, compileRule(rule)])),
      extra: new Map(Object.entries(extra ?? {}).map(([name, rule]) => [name, compileRule(rule)])),
      spent,
    };
  };
  const spent: MappingTimeSpent = { ms: 0 };
  return { user: section('user'), group: section('group'), contact: section('contact') };
}

/** True when the mapping changes nothing for `type`: the default mapping's output stands as is. */
export function isDefault(mapping: CompiledMapping, type: MappedType): boolean {
  const section = mapping[type];
  return section.fields.size === 0 && section.extra.size === 0;
}

function cut(value: string, max: number): string {
  return value.length <= max ? value : value.slice(0, max);
}

/**
 * Applies a compiled rule to the source values. Pure. Values are bounded first (at most
 * {@link MAPPING_MAX_VALUES} values of {@link MAPPING_MAX_VALUE_LENGTH} characters), a
 * regular expression sees at most {@link MAPPING_MAX_REGEX_INPUT} characters of a value. The
 * result is one string for a rule with `first` or `join`, else a list; `undefined` (the field is
 * left out) when nothing is left and there is no default. The default takes the result's shape.
 */
export function applyRule(rule: CompiledRule, source: readonly string[] | undefined, deadline = Infinity): JsonValue | undefined {
  let values: string[] = (source ?? []).slice(0, MAPPING_MAX_VALUES).map((v) => cut(v, MAPPING_MAX_VALUE_LENGTH));
  for (const step of rule.steps) {
    if (performance.now() > deadline) throw new RegexBudgetSpent();
    switch (step.op) {
      case 'first':
        values = values.slice(0, 1);
        break;
      case 'lower':
        values = values.map((v) => v.toLowerCase());
        break;
      case 'join':
        values = values.length === 0 ? [] : [cut(values.join(step.separator), MAPPING_MAX_VALUE_LENGTH)];
        break;
      case 'regex': {
        const kept: string[] = [];
        for (const value of values) {
          if (performance.now() > deadline) throw new RegexBudgetSpent();
          const match = step.pattern.exec(cut(value, MAPPING_MAX_REGEX_INPUT));
          const part = match?.[step.group];
          if (part !== undefined) kept.push(part);
        }
        values = kept;
        break;
      }
    }
  }
  // An empty string is no value, as for an LDAP attribute or a Graph property set to ''.
  values = values.filter((v) => v !== '');
  if (values.length === 0) {
    if (rule.default === undefined) return undefined;
    return rule.single ? rule.default : [rule.default];
  }
  return rule.single ? (values[0] as string) : values;
}

/**
 * Applies one type's overrides and extras over the attributes the default mapping produced.
 * An overridden field is replaced by its rule's result (removed when the rule yields nothing);
 * extras go to `attributes.extra` (left out when none has a value). With `partial` (a Graph delta
 * record carrying only some properties), a rule whose source the record does not carry is
 * skipped, so the stored value stays, and `extra` is written only when the record carries every
 * extra's source; the fields such a record clears are returned. `problem` is set when the rules
 * produced more than {@link MAPPING_MAX_OBJECT_CHARS} characters: the entry is then an issue.
 */
export function applyOverrides(
  section: CompiledTypeMapping,
  values: SourceValues,
  attributes: Record<string, JsonValue>,
  partial = false,
): { cleared: string[]; problem?: string } {
  const cleared: string[] = [];
  const started = performance.now();
  const deadline = started + MAPPING_MAX_REGEX_MS_PER_ENTRY;
  try {
    return overrides(section, values, attributes, partial, cleared, deadline);
  } catch (error) {
    if (!(error instanceof RegexBudgetSpent)) throw error;
    return { cleared, problem: `the attribute mapping's transforms and regular expressions ran more than ${MAPPING_MAX_REGEX_MS_PER_ENTRY} ms on this entry (too many or too long values, or patterns that backtrack)` };
  } finally {
    chargeRun(section.spent, performance.now() - started);
  }
}

function chargeRun(spent: MappingTimeSpent | undefined, ms: number): void {
  if (spent === undefined) return;
  spent.ms += ms;
  if (spent.ms > MAPPING_MAX_MS_PER_RUN) {
    throw new ConfigError(
      `the attribute mapping's transforms took more than ${MAPPING_MAX_MS_PER_RUN / 1000} s in this run (too many or too long values, or patterns that backtrack): simplify settings.attributeMapping, then sync again`,
    );
  }
}

function overrides(
  section: CompiledTypeMapping,
  values: SourceValues,
  attributes: Record<string, JsonValue>,
  partial: boolean,
  cleared: string[],
  deadline: number,
): { cleared: string[]; problem?: string } {
  let chars = 0;
  const count = (value: JsonValue) => {
    chars += typeof value === 'string' ? value.length : (value as string[]).reduce((n, v) => n + v.length + 1, 0);
  };
  for (const [field, rule] of section.fields) {
    const source = values(rule.from);
    if (partial && source === undefined) {
      delete attributes[field];
      continue;
    }
    const result = applyRule(rule, source, deadline);
    if (result === undefined) {
      delete attributes[field];
      cleared.push(field);
    } else {
      attributes[field] = result;
      count(result);
    }
  }
  if (section.extra.size > 0) {
    const sources = [...section.extra.values()].map((rule) => values(rule.from));
    if (partial && sources.some((s) => s === undefined)) return { cleared };
    const extra: Record<string, JsonValue> = {};
    let i = 0;
    for (const [name, rule] of section.extra) {
      const result = applyRule(rule, sources[i], deadline);
      i += 1;
      if (result !== undefined) {
        extra[name] = result;
        count(result);
      }
    }
    if (Object.keys(extra).length > 0) attributes['extra'] = extra;
    else {
      delete attributes['extra'];
      cleared.push('extra');
    }
  }
  if (chars > MAPPING_MAX_OBJECT_CHARS) return { cleared, problem: `the attribute mapping produced ${chars} characters for this entry, more than ${MAPPING_MAX_OBJECT_CHARS}` };
  return { cleared };
}

/** Source attribute names a mapping's `type` section reads (for attribute lists and `$select`). */
export function sourcesOf(mapping: CompiledMapping, type: MappedType): string[] {
  const section = mapping[type];
  return [...new Set([...section.fields.values(), ...section.extra.values()].map((r) => r.from))];
}

/**
 * An LDAP entry's attributes as {@link SourceValues}: names looked up lower-cased; an attribute
 * read as binary comes as base64 (one string per value).
 */
export function ldapSourceValues(entry: {
  readonly attributes: Readonly<Record<string, readonly string[]>>;
  readonly buffers: Readonly<Record<string, readonly Buffer[]>>;
}): SourceValues {
  return (name) => {
    const key = name.toLowerCase();
    // Own attributes only: `constructor` is a valid attribute name and every object inherits one.
    const text = Object.hasOwn(entry.attributes, key) ? entry.attributes[key] : undefined;
    if (text !== undefined) return text;
    const binary = Object.hasOwn(entry.buffers, key) ? entry.buffers[key] : undefined;
    return binary === undefined ? [] : binary.map((b) => b.toString('base64'));
  };
}

/**
 * A Graph record's properties as {@link SourceValues}: a string is one value, a list of strings
 * its values, a boolean or number its text; null and objects have no value. A property the record
 * does not carry is `undefined` (it matters for partial records).
 */
export function graphSourceValues(record: { readonly [property: string]: unknown }): SourceValues {
  return (name) => {
    if (!Object.hasOwn(record, name)) return undefined;
    return graphValues(record[name]);
  };
}

function graphValues(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value))) return [String(value)];
  if (Array.isArray(value)) return value.flatMap((v) => (typeof v === 'string' ? [v] : typeof v === 'number' || typeof v === 'boolean' ? [String(v)] : []));
  return [];
}

/**
 * Source attribute names the mapping in the settings reads for `type` (overrides and extras),
 * to be fetched beside the default attributes. Sorted, so that lists built from it are stable.
 */
export function mappedSources(mapping: AttributeMapping | undefined, type: MappedType): string[] {
  if (mapping === undefined) return [];
  const rules = [...Object.values(mapping[type] ?? {}), ...Object.values(mapping.extra?.[type] ?? {})];
  return [...new Set(rules.map((r) => r.from))].sort();
}

/** `base` followed by the mapping's sources for `type` that it lacks (compared case-insensitively). */
export function withMappedSources(base: readonly string[], mapping: AttributeMapping | undefined, type: MappedType): string[] {
  const seen = new Set(base.map((name) => name.toLowerCase()));
  return [...base, ...mappedSources(mapping, type).filter((name) => !seen.has(name.toLowerCase()))];
}
