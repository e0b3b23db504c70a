import { InvalidJobPayloadError } from './payloads.ts';
import { parseRotateConnectorJob, rotationJobId } from './rotation.ts';

const connectorId = '3f1e2d3c-4b5a-4697-8877-665544332211';

describe('rotation payloads', () => {
  it('accepts a scheduled and a manual rotation', () => {
    expect(parseRotateConnectorJob({ connectorId, trigger: 'schedule', scheduledFor: '2030-01-01T03:00:00.000Z' })).toMatchObject({ trigger: 'schedule' });
    expect(parseRotateConnectorJob({ connectorId, trigger: 'manual', requestedBy: 'ops' })).toMatchObject({ requestedBy: 'ops' });
  });

  it('refuses unknown keys (a private key, say) without echoing values', () => {
    const attempt = () => parseRotateConnectorJob({ connectorId, trigger: 'manual', privateKey: '-----BEGIN PRIVATE KEY-----' });
    expect(attempt).toThrow(InvalidJobPayloadError);
    expect(attempt).toThrow(/privateKey/);
    expect(attempt).not.toThrow(/BEGIN PRIVATE KEY/);
  });

  it('names scheduled jobs by connector and slot', () => {
    expect(rotationJobId(connectorId, 1_893_466_800_000)).toBe(`rotate.${connectorId}.1893466800000`);
  });
});
