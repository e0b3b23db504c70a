import { z } from 'zod';

/** How much of a directory a run reads: everything, or what changed since the last cursor. */
export const syncModes = ['full', 'delta'] as const;
/** A sync mode. */
export type SyncMode = (typeof syncModes)[number];
/** Zod schema of {@link SyncMode}. */
export const syncModeSchema = z.enum(syncModes);
