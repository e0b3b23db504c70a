export { ConsentPropagationError, createEntraAwareProviderFactory, type EntraProviderFactoryOptions } from './provider-factory.ts';
export { withConsentStatus } from './consent-status.ts';
export { ConsentVerificationInFlightError, verifyTenantConsent, type ConsentVerificationOptions } from './consent-verification.ts';
