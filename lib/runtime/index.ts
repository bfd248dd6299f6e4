export { bootstrap } from './bootstrap.ts';
export {
  createRuntimeServer,
  type RequestSample,
  type RuntimeServer,
  type RuntimeServerOptions,
} from './http-server.ts';
export { type RunFunctionOptions, type RunningFunction, runFunction } from './lifecycle.ts';
