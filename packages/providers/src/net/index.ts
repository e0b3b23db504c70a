/**
 * Outbound safety shared by every provider: the destination policy checked on the resolved
 * address of each connection to a customer's system, and the rule on secrets sent there.
 */
export * from './destination.ts';
export * from './secrets.ts';
