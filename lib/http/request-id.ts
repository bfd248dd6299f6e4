const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/** The caller's `X-Request-Id` when it is well-formed (safe to log and echo unescaped), otherwise a new one. */
export const requestIdOf = (given: string | string[] | undefined, generate: () => string): string =>
  typeof given === 'string' && REQUEST_ID_PATTERN.test(given) ? given : generate();
