import { useEffect, useState } from 'react';
import { api } from '../api.ts';
import { fieldId, fieldsOf, type FieldValue } from '../settings-fields.ts';
import { SettingsFieldControl } from './Field.tsx';

/** Options of a connector select: every connector the account may use. */
export function useConnectorOptions(enabled: boolean): ReadonlyArray<{ value: string; label: string }> {
  const [options, setOptions] = useState<ReadonlyArray<{ value: string; label: string }>>([]);
  useEffect(() => {
    if (!enabled) return;
    let live = true;
    api.connectors().then(
      (answer) => live && setOptions(answer.items.map((c) => ({ value: c.id, label: `${c.name} (${c.clientId})` }))),
      () => undefined,
    );
    return () => {
      live = false;
    };
  }, [enabled]);
  return options;
}

/** Every settings field of `kind`, each with its errors (`byField` keyed by `settings.<path>`). */
export function SettingsFields({
  kind,
  values,
  onChange,
  byField,
  disabled = false,
  omit = [],
}: {
  kind: string;
  values: Readonly<Record<string, FieldValue>>;
  onChange: (path: string, value: FieldValue) => void;
  byField: ReadonlyMap<string, string[]>;
  disabled?: boolean;
  /** Paths shown elsewhere on the page (the wizard asks for the connector itself). */
  omit?: readonly string[];
}) {
  const connectorOptions = useConnectorOptions(kind === 'entra_id');
  return (
    <>
      {fieldsOf(kind)
        .filter((field) => !omit.includes(field.path))
        .map((field) => (
          <SettingsFieldControl
            key={field.path}
            field={field}
            id={fieldId(`settings.${field.path}`)}
            value={values[field.path]}
            errors={byField.get(`settings.${field.path}`)}
            disabled={disabled}
            onChange={(value) => onChange(field.path, value)}
            connectorOptions={connectorOptions}
          />
        ))}
    </>
  );
}

/** Paths (`settings.<path>`) that the settings fields of `kind` own, for assigning problems. */
export function settingsFieldPaths(kind: string): string[] {
  return fieldsOf(kind).map((field) => `settings.${field.path}`);
}

/** Moves the focus to the first control marked invalid, once the page has drawn it. */
export function focusFirstInvalid(): void {
  requestAnimationFrame(() => {
    const first = document.querySelector<HTMLElement>('[aria-invalid="true"]');
    first?.focus();
  });
}
