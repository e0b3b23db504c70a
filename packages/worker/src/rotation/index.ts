export { rotateConnectorCredential, RotationBusyError, type RotationOptions, type RotationResult } from './rotate.ts';
export { createRotationProcessor, createRotationWorker, type RotationJobResult, type RotationProcessorOptions, type RotationWorkerOptions } from './processor.ts';
