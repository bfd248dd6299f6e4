export { type AccessLog, createAccessLog, type RequestSample } from './access-log.ts';
export { bootstrap } from './bootstrap.ts';
export { exitOnHelp } from './cli.ts';
export { createRuntimeServer, type RuntimeServer, type RuntimeServerOptions } from './http-server.ts';
export { type RunFunctionOptions, type RunningFunction, runFunction } from './lifecycle.ts';
