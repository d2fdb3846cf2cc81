import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import type { Logger } from 'pino';

const MIN_TLS_VERSION = 'TLSv1.2';

/**
 * TLS 1.2 suites: ECDHE key exchange (forward secrecy) with an AEAD cipher only, for ECDSA and RSA
 * keys (a cert-manager or operator-supplied certificate may be RSA). No CBC with SHA-1 or SHA-2
 * MACs, no CCM, no ARIA or Camellia, no static RSA or DHE key exchange. Go's crypto/tls client (the
 * API server) offers all of these and prefers TLS 1.3 anyway. The TLS 1.3 suites are Node's defaults,
 * named here so that this list is the whole of what netpin offers.
 */
const CIPHERS = [
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'TLS_AES_128_GCM_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/** What every listener's secure context carries besides its key pair. */
const TLS_POLICY = { minVersion: MIN_TLS_VERSION, ciphers: CIPHERS, honorCipherOrder: true } as const;

export interface KeyPair {
  cert: Buffer;
  key: Buffer;
}

/**
 * A serving certificate read from files and read again when they change, as a
 * mounted Secret changes on rotation. A bad pair on disk is refused and the
 * last good one stays in use; `healthy` reports it for readiness.
 */
export class CertificateSource {
  private current: KeyPair;
  private clientCa: Buffer | undefined;
  private digest: string;
  private timer: NodeJS.Timeout | undefined;
  private listeners: Array<(pair: KeyPair) => void> = [];
  healthy = true;
  lastError: string | undefined;

  /**
   * `clientCaPath`: a PEM bundle of the CAs whose client certificates the webhook listener accepts
   * (--client-ca); read again on change like the pair, and a bundle that does not parse is refused
   * the same way.
   */
  constructor(
    private readonly certPath: string,
    private readonly keyPath: string,
    private readonly log?: Logger,
    private readonly clientCaPath?: string,
  ) {
    const { pair, ca } = this.read();
    check(pair, ca);
    this.current = pair;
    this.clientCa = ca;
    this.digest = digestOf(pair, ca);
  }

  get pair(): KeyPair {
    return this.current;
  }

  /** Whether the webhook listener asks for, and requires, a client certificate. */
  get requiresClientCertificate(): boolean {
    return this.clientCaPath !== undefined;
  }

  /** The secure context of the webhook listener: the pair, and the client CAs when there are. */
  secureContextOptions(): SecureContextOptions {
    return {
      cert: this.current.cert,
      key: this.current.key,
      ...TLS_POLICY,
      ...(this.clientCa ? { ca: this.clientCa } : {}),
    };
  }

  /** The secure context of a listener that asks for no client certificate (the metrics port). */
  serverOnlyContextOptions(): SecureContextOptions {
    return { cert: this.current.cert, key: this.current.key, ...TLS_POLICY };
  }

  onChange(listener: (pair: KeyPair) => void): void {
    this.listeners.push(listener);
  }

  /** Polls the files; polling, because a Secret volume swaps a symlink that inotify watches miss. */
  start(intervalMs = 5_000): void {
    this.timer = setInterval(() => this.poll(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Reads the files now; returns true when a new pair was loaded. */
  poll(): boolean {
    let next: KeyPair;
    let ca: Buffer | undefined;
    let digest: string;
    try {
      ({ pair: next, ca } = this.read());
      digest = digestOf(next, ca);
      if (digest === this.digest) {
        this.healthy = true;
        this.lastError = undefined;
        return false;
      }
      check(next, ca);
    } catch (e) {
      // Between the writes of tls.crt and tls.key the pair may not match yet: keep serving the old one.
      const reason = e instanceof Error ? e.message : String(e);
      // Once per reason, not once per poll.
      if (reason !== this.lastError)
        this.log?.error(
          { cert: this.certPath, key: this.keyPath, err: reason },
          'serving certificate not reloaded: the old one stays in use, and the webhook is not ready until the files make a good pair',
        );
      this.healthy = false;
      this.lastError = reason;
      return false;
    }
    this.current = next;
    this.clientCa = ca;
    this.digest = digest;
    this.healthy = true;
    this.lastError = undefined;
    for (const l of this.listeners) l(next);
    return true;
  }

  private read(): { pair: KeyPair; ca: Buffer | undefined } {
    return {
      pair: { cert: readFileSync(this.certPath), key: readFileSync(this.keyPath) },
      ca: this.clientCaPath === undefined ? undefined : readFileSync(this.clientCaPath),
    };
  }
}

function check(pair: KeyPair, ca: Buffer | undefined): void {
  // Throws when the key does not match the certificate or either does not parse.
  createSecureContext({ cert: pair.cert, key: pair.key, ...TLS_POLICY });
  if (ca === undefined) return;
  // An empty or unparsable bundle would make every client certificate fail, or (empty) none be asked for.
  if (!/-----BEGIN CERTIFICATE-----/.test(ca.toString('latin1')))
    throw new Error('the client CA bundle holds no PEM certificate');
  createSecureContext({ ca });
}

function digestOf(pair: KeyPair, ca: Buffer | undefined): string {
  const h = createHash('sha256').update(pair.cert).update(pair.key);
  if (ca) h.update('\0client-ca\0').update(ca);
  return h.digest('hex');
}
