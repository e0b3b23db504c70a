export {
  applyOverrides,
  applyRule,
  compileMapping,
  compileRule,
  graphSourceValues,
  isDefault,
  ldapSourceValues,
  mappedSources,
  withMappedSources,
} from './engine.ts';
export type { CompiledMapping, CompiledRule, CompiledTypeMapping, MappedType, SourceValues } from './engine.ts';
export { defaultMappings, type DefaultField, type DefaultMapping } from './defaults.ts';
export { graphMappingRules, ldapMappingRules, refineAttributeMapping, structuralFields, type MappingKindRules } from './kinds.ts';
export { mappedSample, previewProvider } from './preview.ts';
