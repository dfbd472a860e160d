// Splitting a PEM file into its blocks (certificates, private keys), in file order.

export interface PemBlock {
  /** the label between BEGIN and END, e.g. "CERTIFICATE", "PRIVATE KEY", "ENCRYPTED PRIVATE KEY" */
  label: string;
  /** the whole block including its BEGIN/END lines and a trailing newline */
  text: string;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n[\s\S]*?-----END \1-----/g;

export function splitPem(text: string): PemBlock[] {
  return [...text.matchAll(BLOCK)].map((m) => ({ label: m[1] ?? '', text: `${m[0]}\n` }));
}

export function isPrivateKeyLabel(label: string): boolean {
  return label.endsWith('PRIVATE KEY');
}
