import { useState, type FormEvent } from 'react';
import { api } from '../api.ts';
import { ApiError, assignFieldErrors, messageOf } from '../problem.ts';
import { fieldId } from '../settings-fields.ts';
import type { CreatedConnector, FieldProblem } from '../types.ts';
import { SelectField, TextField } from './Field.tsx';
import { FormProblem } from './Messages.tsx';
import { focusFirstInvalid } from './SettingsFields.tsx';

/**
 * "Create connector" (platform operators): registers an app registration as a connector and shows
 * the certificate to upload to it. `headingLevel` fits the form into the page around it.
 */
export function CreateConnectorForm({ onCreated, headingLevel = 2 }: { onCreated: (connector: CreatedConnector) => void; headingLevel?: 2 | 3 }) {
  const [form, setForm] = useState({ name: '', description: '', clientId: '', objectId: '', homeTenant: '', cloud: 'global' });
  const [errors, setErrors] = useState<FieldProblem[]>([]);
  const [message, setMessage] = useState<string | undefined>(undefined);
  const [created, setCreated] = useState<CreatedConnector | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const set = (patch: Partial<typeof form>) => setForm((f) => ({ ...f, ...patch }));
  const paths = ['name', 'description', 'clientId', 'objectId', 'homeTenant', 'cloud'];
  const { byField, unassigned } = assignFieldErrors(errors, paths);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (busy) return;
    const local: FieldProblem[] = [];
    if (form.name.trim() === '') local.push({ in: 'body', path: 'name', message: 'Enter a name: it is required' });
    if (form.description.trim() === '') local.push({ in: 'body', path: 'description', message: 'Enter a description: it is required' });
    if (local.length > 0) {
      setErrors(local);
      setMessage('The connector was not created: fill in the required fields.');
      focusFirstInvalid();
      return;
    }
    setBusy(true);
    setMessage(undefined);
    try {
      const connector = await api.createConnector({
        name: form.name.trim(),
        description: form.description.trim(),
        clientId: form.clientId.trim(),
        objectId: form.objectId.trim(),
        homeTenant: form.homeTenant.trim(),
        cloud: form.cloud as 'global' | 'usgov' | 'china',
      });
      setErrors([]);
      setCreated(connector);
      onCreated(connector);
    } catch (error) {
      const problems = error instanceof ApiError ? error.errors : [];
      setErrors([...problems]);
      setMessage(`The connector was not created: ${messageOf(error)}`);
      if (problems.length > 0) focusFirstInvalid();
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="panel" aria-labelledby="create-connector-heading">
      {headingLevel === 2 ? <h2 id="create-connector-heading">Create connector</h2> : <h3 id="create-connector-heading">Create connector</h3>}
      <p className="muted">Registers a platform app registration as a connector; its first certificate is made here, to upload to the app registration.</p>
      <form onSubmit={(e) => void submit(e)} noValidate>
        <TextField id={fieldId('connector-name')} label="Name" required value={form.name} onChange={(name) => set({ name })} errors={byField.get('name')} />
        <TextField id={fieldId('connector-description')} label="Description" required value={form.description} onChange={(description) => set({ description })} errors={byField.get('description')} />
        <TextField id={fieldId('connector-clientId')} label="Application (client) ID" required value={form.clientId} onChange={(clientId) => set({ clientId })} errors={byField.get('clientId')} />
        <TextField id={fieldId('connector-objectId')} label="Object ID" required value={form.objectId} onChange={(objectId) => set({ objectId })} errors={byField.get('objectId')} hint="Object ID of the app registration (not of its service principal)" />
        <TextField id={fieldId('connector-homeTenant')} label="Home tenant" required value={form.homeTenant} onChange={(homeTenant) => set({ homeTenant })} errors={byField.get('homeTenant')} hint="Tenant ID (GUID) the app registration lives in" />
        <SelectField
          id={fieldId('connector-cloud')}
          label="Cloud"
          value={form.cloud}
          onChange={(cloud) => set({ cloud })}
          options={[
            { value: 'global', label: 'Global (login.microsoftonline.com)' },
            { value: 'usgov', label: 'US Government' },
            { value: 'china', label: 'China (21Vianet)' },
          ]}
          errors={byField.get('cloud')}
        />
        <div className="form-buttons">
          <button type="submit" aria-disabled={busy}>
            Create connector
          </button>
        </div>
      </form>
      {message === undefined ? null : (
        <FormProblem message={message} unassigned={unassigned} />
      )}
      {created === undefined ? null : (
        <div role="status" className="message message-ok">
          <p>
            Connector {created.name} created. Upload this certificate to the app registration ({created.clientId}), under Certificates &amp; secrets:
          </p>
          <pre className="pem" tabIndex={0} aria-label="Certificate to upload">
            {created.certificatePem}
          </pre>
        </div>
      )}
    </section>
  );
}
