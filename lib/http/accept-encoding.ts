/** Content negotiation of response codings (RFC 9110 §12.5.3), shared by every answer that can be compressed. */

/** The coding to use for `accept` (br before gzip), or undefined when neither is acceptable. */
export function responseCodingOf(accept: string | undefined): 'br' | 'gzip' | undefined {
  if (accept === undefined) return undefined;
  const offered = new Map<string, number>();
  for (const part of accept.split(',')) {
    const [name = '', ...params] = part.trim().toLowerCase().split(';');
    const q = params.map((p) => /^\s*q=([0-9.]+)\s*$/.exec(p)?.[1]).find((v) => v !== undefined);
    offered.set(name, q === undefined ? 1 : Number(q));
  }
  const quality = (coding: string) => offered.get(coding) ?? (offered.has('*') ? (offered.get('*') ?? 0) : 0);
  if (quality('br') > 0) return 'br';
  if (quality('gzip') > 0) return 'gzip';
  return undefined;
}
