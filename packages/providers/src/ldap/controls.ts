import { BerReader, BerWriter, Control } from 'ldapts';

/** OID of Active Directory's extended DN control: DN values carry `<GUID=…>;<SID=…>;`. */
export const extendedDnOid = '1.2.840.113556.1.4.529';
/** OID of Active Directory's DirSync control (changes and deletions since a cookie). */
export const dirSyncOid = '1.2.840.113556.1.4.841';

const octetString = 0x04;

/** A request control whose value is already BER-encoded (or absent). */
export class RawControl extends Control {
  readonly value: Buffer | undefined;
  constructor(oid: string, options: { critical?: boolean; value?: Buffer } = {}) {
    super(oid, { critical: options.critical === true });
    this.value = options.value;
  }
  protected override writeControl(writer: BerWriter): void {
    if (this.value) writer.writeBuffer(this.value, octetString);
  }
}

function sequence(write: (writer: BerWriter) => void): Buffer {
  const writer = new BerWriter();
  writer.startSequence();
  write(writer);
  writer.endSequence();
  return writer.buffer;
}

/**
 * The extended DN control asking for the string form (`<GUID=xxxxxxxx-…>;<SID=S-1-5-…>;CN=…`), so
 * DN-valued attributes (manager, member) name their targets' objectGUID without a lookup.
 */
export function extendedDnControl(): Control {
  return new RawControl(extendedDnOid, { value: sequence((w) => w.writeInt(1)) });
}

/** A DN value with its extended components split off (when the extended DN control was used). */
export interface ExtendedDn {
  /** The plain DN. */
  readonly dn: string;
  /** `GUID` component, lower case (the string form is already the canonical GUID). */
  readonly guid: string | undefined;
  readonly sid: string | undefined;
}

/** Splits `<GUID=…>;<SID=…>;dn` (either component optional); a plain DN comes back unchanged. */
export function parseExtendedDn(value: string): ExtendedDn {
  let rest = value;
  let guid: string | undefined;
  let sid: string | undefined;
  while (rest.startsWith('<')) {
    const end = rest.indexOf('>');
    if (end < 0) break;
    const part = rest.slice(1, end);
    const eq = part.indexOf('=');
    const name = part.slice(0, eq).toUpperCase();
    const v = part.slice(eq + 1);
    if (name === 'GUID') guid = v.toLowerCase();
    else if (name === 'SID') sid = v;
    rest = rest.slice(end + 1);
    if (rest.startsWith(';')) rest = rest.slice(1);
  }
  return { dn: rest, guid, sid };
}

/** DirSync request flags (MS-ADTS 3.1.1.3.4.1.3). */
export const DirSyncFlags = {
  /** Return only attributes and objects the caller may read (no Replicating Directory Changes right needed on W2003+). */
  objectSecurity: 0x1,
  ancestorsFirstOrder: 0x800,
  publicDataOnly: 0x2000,
  incrementalValues: 0x80000000,
} as const;

/** The DirSync control: `flags`, the most bytes per answer, and the cookie of the last answer (empty: from the start). */
export function dirSyncControl(options: { flags: number; maxBytes?: number; cookie?: Buffer }): Control {
  return new RawControl(dirSyncOid, {
    critical: true,
    value: sequence((w) => {
      // The flags are an unsigned 32-bit field sent as a signed INTEGER.
      w.writeInt(options.flags | 0);
      w.writeInt(options.maxBytes ?? 0x7fffffff);
      w.writeBuffer(options.cookie ?? Buffer.alloc(0), octetString);
    }),
  });
}

/** The DirSync response control: whether more changes wait, and the cookie to continue from. */
export interface DirSyncResponse {
  readonly more: boolean;
  readonly cookie: Buffer;
}

/** Decodes the value of a DirSync response control. */
export function parseDirSyncResponse(value: Buffer | undefined): DirSyncResponse | undefined {
  if (!value || value.length === 0) return undefined;
  const reader = new BerReader(value);
  reader.readSequence();
  const more = (reader.readInt() ?? 0) !== 0;
  reader.readInt();
  const cookie = reader.readString(octetString, true) ?? Buffer.alloc(0);
  return { more, cookie: Buffer.from(cookie) };
}
