import type { ChangeEvent, ReactNode } from 'react';
import type { FieldValue, SettingsField } from '../settings-fields.ts';

interface Described {
  readonly id: string;
  readonly hint?: string | undefined;
  readonly errors?: readonly string[] | undefined;
}

/** Ids of a control's hint and error, for aria-describedby. */
function describedBy({ id, hint, errors }: Described): string | undefined {
  const ids = [...(errors !== undefined && errors.length > 0 ? [`${id}-error`] : []), ...(hint === undefined ? [] : [`${id}-hint`])];
  return ids.length === 0 ? undefined : ids.join(' ');
}

function HintAndErrors({ id, hint, errors }: Described) {
  return (
    <>
      {hint === undefined ? null : (
        <p className="hint" id={`${id}-hint`}>
          {hint}
        </p>
      )}
      {errors !== undefined && errors.length > 0 ? (
        <p className="field-error" id={`${id}-error`}>
          {errors.join('; ')}
        </p>
      ) : null}
    </>
  );
}

/**
 * A label and, beside it (outside the label, so the field's name stays its label), the visible
 * "(required)" mark; the control's `required` attribute says it to assistive technology.
 */
function LabelRow({ id, label, required }: { id: string; label: string; required: boolean }) {
  return (
    <div className="label-row">
      <label htmlFor={id}>{label}</label>
      {required ? (
        <span className="required" aria-hidden="true">
          (required)
        </span>
      ) : null}
    </div>
  );
}

interface TextFieldProps extends Described {
  readonly label: string;
  readonly value: string;
  readonly onChange: (value: string) => void;
  readonly type?: 'text' | 'password' | 'number';
  readonly multiline?: boolean;
  readonly required?: boolean;
  readonly readOnly?: boolean;
  readonly disabled?: boolean;
  readonly placeholder?: string | undefined;
  readonly autoComplete?: string;
  readonly rows?: number;
}

/** A labelled text input (or textarea) with its hint and its errors linked by aria-describedby. */
export function TextField(props: TextFieldProps) {
  const { id, label, value, onChange, type = 'text', multiline = false, required = false, readOnly = false, disabled = false, placeholder, autoComplete, rows = 3 } = props;
  const invalid = props.errors !== undefined && props.errors.length > 0;
  const common = {
    id,
    value,
    required,
    readOnly,
    disabled,
    'aria-invalid': invalid || undefined,
    'aria-describedby': describedBy(props),
    ...(placeholder === undefined ? {} : { placeholder }),
    onChange: (event: ChangeEvent<HTMLInputElement | HTMLTextAreaElement>) => onChange(event.target.value),
  };
  return (
    <div className={`field${invalid ? ' field-invalid' : ''}`}>
      <LabelRow id={id} label={label} required={required} />
      {multiline ? <textarea {...common} rows={rows} spellCheck={false} /> : <input {...common} type={type} {...(autoComplete === undefined ? {} : { autoComplete })} spellCheck={false} />}
      <HintAndErrors {...props} />
    </div>
  );
}

interface SelectFieldProps extends Described {
  readonly label: string;
  readonly value: string;
  readonly onChange: (value: string) => void;
  readonly options: ReadonlyArray<{ readonly value: string; readonly label: string }>;
  readonly required?: boolean;
  readonly disabled?: boolean;
}

/** A labelled select with hint and errors. */
export function SelectField(props: SelectFieldProps) {
  const { id, label, value, onChange, options, required = false, disabled = false } = props;
  const invalid = props.errors !== undefined && props.errors.length > 0;
  return (
    <div className={`field${invalid ? ' field-invalid' : ''}`}>
      <LabelRow id={id} label={label} required={required} />
      <select id={id} value={value} disabled={disabled} required={required} aria-invalid={invalid || undefined} aria-describedby={describedBy(props)} onChange={(e) => onChange(e.target.value)}>
        {options.map((o) => (
          <option key={o.value} value={o.value}>
            {o.label}
          </option>
        ))}
      </select>
      <HintAndErrors {...props} />
    </div>
  );
}

/** A labelled checkbox with hint and errors. */
export function CheckboxField(props: Described & { readonly label: string; readonly checked: boolean; readonly onChange: (checked: boolean) => void; readonly disabled?: boolean }) {
  const invalid = props.errors !== undefined && props.errors.length > 0;
  return (
    <div className={`field field-checkbox${invalid ? ' field-invalid' : ''}`}>
      <input
        type="checkbox"
        id={props.id}
        checked={props.checked}
        disabled={props.disabled ?? false}
        aria-invalid={invalid || undefined}
        aria-describedby={describedBy(props)}
        onChange={(e) => props.onChange(e.target.checked)}
      />
      <label htmlFor={props.id}>{props.label}</label>
      <HintAndErrors {...props} />
    </div>
  );
}

/** A group of checkboxes (a fieldset with a legend) storing the ticked values. */
export function ChoicesField(
  props: Described & {
    readonly label: string;
    readonly value: readonly string[];
    readonly options: ReadonlyArray<{ readonly value: string; readonly label: string }>;
    readonly onChange: (value: string[]) => void;
    readonly disabled?: boolean;
  },
) {
  const invalid = props.errors !== undefined && props.errors.length > 0;
  return (
    <fieldset className={`field choices${invalid ? ' field-invalid' : ''}`} aria-describedby={describedBy(props)} disabled={props.disabled ?? false}>
      <legend>{props.label}</legend>
      {props.options.map((option) => (
        <div key={option.value} className="choice">
          <input
            type="checkbox"
            id={`${props.id}-${option.value}`}
            checked={props.value.includes(option.value)}
            onChange={(e) => props.onChange(e.target.checked ? [...props.value, option.value] : props.value.filter((v) => v !== option.value))}
          />
          <label htmlFor={`${props.id}-${option.value}`}>{option.label}</label>
        </div>
      ))}
      <HintAndErrors {...props} />
    </fieldset>
  );
}

/** One settings field of a directory kind, edited as its kind says. */
export function SettingsFieldControl({
  field,
  id,
  value,
  errors,
  disabled,
  onChange,
  connectorOptions,
}: {
  field: SettingsField;
  id: string;
  value: FieldValue | undefined;
  errors: readonly string[] | undefined;
  disabled: boolean;
  onChange: (value: FieldValue) => void;
  connectorOptions?: ReadonlyArray<{ value: string; label: string }>;
}): ReactNode {
  const common = { id, hint: field.hint, errors, disabled };
  switch (field.kind) {
    case 'checkbox':
      return <CheckboxField {...common} label={field.label} checked={value === true} onChange={onChange} />;
    case 'choices':
      return <ChoicesField {...common} label={field.label} value={Array.isArray(value) ? value : []} options={field.options ?? []} onChange={onChange} />;
    case 'select':
      return <SelectField {...common} label={field.label} value={typeof value === 'string' ? value : ''} options={field.options ?? []} onChange={onChange} />;
    case 'connector':
      return (
        <SelectField
          {...common}
          label={field.label}
          required={field.required ?? false}
          value={typeof value === 'string' ? value : ''}
          options={[{ value: '', label: 'Choose a connector' }, ...(connectorOptions ?? [])]}
          onChange={onChange}
        />
      );
    default:
      return (
        <TextField
          {...common}
          label={field.label}
          value={typeof value === 'string' ? value : ''}
          onChange={onChange}
          multiline={field.kind === 'lines' || field.kind === 'textarea'}
          rows={field.kind === 'textarea' ? 5 : 3}
          required={field.required ?? false}
          placeholder={field.placeholder}
        />
      );
  }
}
