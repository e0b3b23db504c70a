// The settings form of each directory kind: which fields it shows, and how form values map to
// and from the settings JSON the providers validate (packages/providers/src/*/config.ts). Pure:
// tested in test/settings-fields.test.ts.

/** How a field is edited. */
export type FieldKind = 'text' | 'lines' | 'textarea' | 'select' | 'checkbox' | 'choices' | 'connector';

/** One field of a settings form. */
export interface SettingsField {
  /** Dotted path inside `settings` (`users.baseDns`); problems at `settings.<path>` land here. */
  readonly path: string;
  readonly label: string;
  readonly kind: FieldKind;
  readonly hint?: string;
  readonly required?: boolean;
  readonly placeholder?: string;
  /** Choices of a `select` or `choices` field; value '' of a select leaves the setting out. */
  readonly options?: ReadonlyArray<{ readonly value: string; readonly label: string }>;
}

/** A form value: text, lines joined, a box ticked, or the ticked choices. */
export type FieldValue = string | boolean | string[];

const url: SettingsField = { path: 'url', label: 'Server URL', kind: 'text', required: true, placeholder: 'ldaps://ldap.example.com', hint: 'ldaps:// (TLS) or ldap:// (StartTLS unless TLS mode says otherwise)' };
const bindDn: SettingsField = { path: 'bindDn', label: 'User Distinguished Name', kind: 'text', required: true, placeholder: 'cn=reader,dc=example,dc=com', hint: 'DN of the read-only service account the sync binds as' };
const tlsFields: SettingsField[] = [
  {
    path: 'tls.mode',
    label: 'TLS mode',
    kind: 'select',
    options: [
      { value: '', label: 'From the URL (ldaps:// or StartTLS)' },
      { value: 'ldaps', label: 'LDAPS' },
      { value: 'starttls', label: 'StartTLS' },
      { value: 'none', label: 'None (unencrypted)' },
    ],
  },
  { path: 'tls.caPem', label: 'CA certificate (PEM)', kind: 'textarea', hint: "Only when the server's certificate is signed by a private CA" },
  // A domain controller is often reached by address or through a load balancer while its
  // certificate names the DC itself: without this the wizard could not configure it.
  { path: 'tls.serverName', label: 'TLS server name', kind: 'text', hint: "Only when the certificate names the server differently from the URL (e.g. dc1.corp.example.com)", placeholder: 'dc1.corp.example.com' },
  { path: 'tls.allowInsecure', label: 'Allow an unencrypted connection', kind: 'checkbox', hint: 'Sends the bind password in clear text: only for TLS mode None' },
];

/** The settings fields of each directory kind. */
export const settingsFields: Readonly<Record<string, readonly SettingsField[]>> = {
  ldap: [
    url,
    bindDn,
    { path: 'users.baseDns', label: 'Users base DNs', kind: 'lines', required: true, hint: 'One DN per line', placeholder: 'ou=people,dc=example,dc=com' },
    { path: 'users.filter', label: 'Users filter', kind: 'text', hint: 'Optional LDAP filter, e.g. (department=Sales)' },
    { path: 'groups.baseDns', label: 'Groups base DNs', kind: 'lines', required: true, hint: 'One DN per line', placeholder: 'ou=groups,dc=example,dc=com' },
    { path: 'groups.filter', label: 'Groups filter', kind: 'text', hint: 'Optional LDAP filter' },
    ...tlsFields,
  ],
  active_directory: [
    { ...url, placeholder: 'ldaps://dc1.corp.example.com' },
    { ...bindDn, placeholder: 'CN=dirsync,OU=Service Accounts,DC=corp,DC=example,DC=com' },
    { path: 'baseDns', label: 'Base DNs', kind: 'lines', required: true, hint: 'OUs (or the domain) to sync, one DN per line', placeholder: 'DC=corp,DC=example,DC=com' },
    { path: 'filter', label: 'Filter', kind: 'text', hint: 'Optional: only objects matching this LDAP filter' },
    { path: 'excludeFilter', label: 'Exclude filter', kind: 'text', hint: 'Optional: objects matching this filter are left out' },
    {
      path: 'objectTypes',
      label: 'Object types',
      kind: 'choices',
      options: [
        { value: 'user', label: 'Users' },
        { value: 'group', label: 'Groups' },
        { value: 'contact', label: 'Contacts' },
      ],
    },
    {
      path: 'deltaMethod',
      label: 'How changes are found',
      kind: 'select',
      options: [
        { value: '', label: 'Update sequence numbers (default)' },
        { value: 'usn', label: 'Update sequence numbers' },
        { value: 'dirsync', label: 'DirSync control (needs Replicating Directory Changes)' },
      ],
    },
    ...tlsFields,
  ],
  domino: [
    { ...url, placeholder: 'ldaps://domino.example.com' },
    { ...bindDn, placeholder: 'CN=dirsync/O=Example' },
    { path: 'users.baseDns', label: 'Users base DNs', kind: 'lines', required: true, hint: 'One DN per line, e.g. O=Example', placeholder: 'O=Example' },
    { path: 'groups.baseDns', label: 'Groups base DNs', kind: 'lines', required: true, hint: 'One DN per line; write "" for the directory root', placeholder: '""' },
    ...tlsFields,
  ],
  entra_id: [
    { path: 'tenantId', label: 'Tenant', kind: 'text', required: true, placeholder: 'contoso.onmicrosoft.com', hint: 'Tenant ID (GUID) or its domain' },
    { path: 'connectorId', label: 'Connector', kind: 'connector', required: true },
  ],
};

/** The fields of `kind` (none for an unknown kind). */
export function fieldsOf(kind: string): readonly SettingsField[] {
  return settingsFields[kind] ?? [];
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function getPath(settings: Record<string, unknown>, path: string): unknown {
  let current: unknown = settings;
  for (const key of path.split('.')) {
    if (!isRecord(current)) return undefined;
    current = current[key];
  }
  return current;
}

function setPath(settings: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let current = settings;
  for (const key of keys.slice(0, -1)) {
    const next = current[key];
    if (!isRecord(next)) current[key] = {};
    current = current[key] as Record<string, unknown>;
  }
  const last = keys[keys.length - 1] ?? path;
  if (value === undefined) delete current[last];
  else current[last] = value;
}

// Domino names the directory root "" (the empty DN): a line holding just "" stands for it.
const rootLine = '""';

/** The form value of `field` in stored settings. */
export function readField(settings: Record<string, unknown>, field: SettingsField): FieldValue {
  const value = getPath(settings, field.path);
  switch (field.kind) {
    case 'checkbox':
      return value === true;
    case 'choices':
      return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : (field.options ?? []).map((o) => o.value);
    case 'lines':
      return Array.isArray(value) ? value.map((v) => (v === '' ? rootLine : String(v))).join('\n') : '';
    default:
      return typeof value === 'string' ? value : value === undefined || value === null ? '' : String(value);
  }
}

/** Form values of every field of `kind` read from `settings`. */
export function readFields(kind: string, settings: Record<string, unknown>): Record<string, FieldValue> {
  return Object.fromEntries(fieldsOf(kind).map((field) => [field.path, readField(settings, field)]));
}

/**
 * The settings to send: `base` (the stored settings, so fields this form does not show are kept)
 * with every field of `kind` set from `values`. Empty optional text leaves the setting out; a
 * list is always sent, empty or not, so its problem is reported at its own field.
 */
export function applyFields(kind: string, base: Record<string, unknown>, values: Readonly<Record<string, FieldValue>>): Record<string, unknown> {
  const settings = structuredClone(base);
  for (const field of fieldsOf(kind)) {
    const value = values[field.path];
    switch (field.kind) {
      case 'checkbox':
        setPath(settings, field.path, value === true ? true : undefined);
        break;
      case 'choices':
        setPath(settings, field.path, Array.isArray(value) ? value : undefined);
        break;
      case 'lines': {
        const lines = typeof value === 'string' ? value.split('\n').map((line) => line.trim()).filter((line) => line !== '') : [];
        setPath(settings, field.path, lines.map((line) => (line === rootLine ? '' : line)));
        break;
      }
      default: {
        const text = typeof value === 'string' ? (field.kind === 'textarea' ? value : value.trim()) : '';
        setPath(settings, field.path, text.trim() === '' ? undefined : text);
      }
    }
  }
  // A section left with nothing in it (tls without a mode or CA) is dropped, so defaults apply.
  for (const key of Object.keys(settings)) {
    const value = settings[key];
    if (isRecord(value) && Object.keys(value).length === 0) delete settings[key];
  }
  return settings;
}

/** Id of the form control of a settings field (also the anchor of its errors). */
export function fieldId(path: string): string {
  return `field-${path.replace(/[^A-Za-z0-9]+/g, '-')}`;
}
