import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import type { Logger } from 'pino';

const MIN_TLS_VERSION = 'TLSv1.2';

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
  private digest: string;
  private timer: NodeJS.Timeout | undefined;
  private listeners: Array<(pair: KeyPair) => void> = [];
  healthy = true;
  lastError: string | undefined;

  constructor(
    private readonly certPath: string,
    private readonly keyPath: string,
    private readonly log?: Logger,
  ) {
    this.current = this.read();
    check(this.current);
    this.digest = digestOf(this.current);
  }

  get pair(): KeyPair {
    return this.current;
  }

  secureContextOptions(): SecureContextOptions {
    return { cert: this.current.cert, key: this.current.key, minVersion: MIN_TLS_VERSION };
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
    try {
      next = this.read();
      if (digestOf(next) === this.digest) {
        this.healthy = true;
        this.lastError = undefined;
        return false;
      }
      check(next);
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
    this.digest = digestOf(next);
    this.healthy = true;
    this.lastError = undefined;
    for (const l of this.listeners) l(next);
    return true;
  }

  private read(): KeyPair {
    return { cert: readFileSync(this.certPath), key: readFileSync(this.keyPath) };
  }
}

function check(pair: KeyPair): void {
  // Throws when the key does not match the certificate or either does not parse.
  createSecureContext({ cert: pair.cert, key: pair.key, minVersion: MIN_TLS_VERSION });
}

function digestOf(pair: KeyPair): string {
  return createHash('sha256').update(pair.cert).update(pair.key).digest('hex');
}
