import { describe, expect, it } from 'vitest';
import { parseServeArgs, USAGE, UsageError } from '../../src/cli/args.js';

const NO_ENV = {};

describe('parseServeArgs', () => {
  it('fills in defaults', () => {
    expect(parseServeArgs(['--cni', 'calico', '--pools', 'p.yaml'], NO_ENV)).toMatchObject({
      cni: 'calico',
      pools: 'p.yaml',
      host: '0.0.0.0',
      port: 8443,
      certDir: '.certs',
      ledger: 'memory',
      kubeconfig: undefined,
      hosts: undefined,
      claimGraceSeconds: 15,
      egressGraceSeconds: 300,
      claimsPage: 5000,
      logLevel: 'info',
    });
  });

  it('reads every flag, with a space or with =', () => {
    const opts = parseServeArgs(
      [
        '--cni=kube-ovn',
        '--ledger',
        'kube',
        '--kubeconfig',
        '/k',
        '--listen=[::1]:9443',
        '--cert-dir',
        '/c',
        '--tls-hosts',
        'a, b,,127.0.0.1',
        '--claim-grace=2.5',
        '--log-level',
        'debug',
      ],
      NO_ENV,
    );
    expect(opts).toMatchObject({
      cni: 'kube-ovn',
      ledger: 'kube',
      kubeconfig: '/k',
      host: '::1',
      port: 9443,
      certDir: '/c',
      hosts: ['a', 'b', '127.0.0.1'],
      claimGraceSeconds: 2.5,
      logLevel: 'debug',
    });
  });

  it('keeps "=" inside a value', () => {
    expect(parseServeArgs(['--cni', 'antrea', '--pools=a=b.yaml'], NO_ENV).pools).toBe('a=b.yaml');
  });

  it.each([
    ['127.0.0.1:0', '127.0.0.1', 0],
    [':8443', '0.0.0.0', 8443],
    ['localhost:65535', 'localhost', 65535],
    ['[fd00::1]:443', 'fd00::1', 443],
  ])('reads --listen %s', (listen, host, port) => {
    expect(parseServeArgs(['--cni', 'cilium', '--pools', 'p', '--listen', listen], NO_ENV)).toMatchObject({
      host,
      port,
    });
  });

  it('defaults to the kube ledger inside a cluster, and takes the log level from the environment', () => {
    const env = { KUBERNETES_SERVICE_HOST: '10.96.0.1', NETPIN_LOG_LEVEL: 'warn' };
    expect(parseServeArgs(['--cni', 'calico'], env)).toMatchObject({ ledger: 'kube', logLevel: 'warn' });
    expect(parseServeArgs(['--cni', 'calico', '--log-level', 'error'], env).logLevel).toBe('error');
  });

  it.each<[string[], string]>([
    [[], '--cni is required'],
    [
      ['--cni', 'flannel', '--pools', 'p'],
      '--cni must be one of calico, kube-ovn, antrea, cilium, netpin-ipam, not "flannel"',
    ],
    [['--cni', 'calico', '--bogus', 'x'], 'unknown flag --bogus'],
    [['--cni', 'calico', 'serve'], 'unexpected argument "serve"'],
    [['--cni', 'calico', '-p', 'x'], 'unexpected argument "-p"'],
    [['--cni'], '--cni needs a value'],
    [['--cni', '--pools', 'p'], '--cni needs a value'],
    [['--cni', 'calico'], '--ledger memory needs --pools <file.yaml>'],
    [['--cni', 'calico', '--ledger', 'etcd'], '--ledger must be memory or kube, not "etcd"'],
    [['--cni', 'calico', '--pools', 'p', '--listen', '8443'], '--listen must be host:port, not "8443"'],
    [
      ['--cni', 'calico', '--pools', 'p', '--listen', '127.0.0.1:70000'],
      '--listen must be host:port, not "127.0.0.1:70000"',
    ],
    [['--cni', 'calico', '--pools', 'p', '--listen', '127.0.0.1:'], '--listen must be host:port, not "127.0.0.1:"'],
    [['--cni', 'calico', '--pools', 'p', '--listen', '::1:8443'], '--listen must be host:port, not "::1:8443"'],
    [['--cni', 'calico', '--pools', 'p', '--claim-grace', 'soon'], '--claim-grace must be a number of seconds'],
    [['--cni', 'calico', '--pools', 'p', '--claim-grace=-1'], '--claim-grace must be a number of seconds'],
  ])('refuses %j: %s', (argv, message) => {
    expect(() => parseServeArgs(argv, NO_ENV)).toThrow(new UsageError(message));
  });

  it('lists every flag it accepts in the usage text', () => {
    for (const flag of [
      '--cni',
      '--pools',
      '--listen',
      '--cert-dir',
      '--ledger',
      '--kubeconfig',
      '--tls-hosts',
      '--claim-grace',
      '--log-level',
    ]) {
      expect(USAGE).toContain(`[${flag} `.replace('[--cni ', '--cni '));
    }
  });
});

describe('parseServeArgs: client certificates and the metrics listener (issue 20)', () => {
  const base = ['--cni', 'calico', '--pools', 'p.yaml'];

  it('asks for neither by default: one listener, no client certificate', () => {
    const opts = parseServeArgs(base, NO_ENV);
    expect(opts).not.toHaveProperty('clientCa');
    expect(opts).not.toHaveProperty('metricsListen');
  });

  it('reads --client-ca and --metrics-listen', () => {
    expect(
      parseServeArgs([...base, '--client-ca', '/etc/netpin/client-ca.pem', '--metrics-listen=0.0.0.0:9443'], NO_ENV),
    ).toMatchObject({ clientCa: '/etc/netpin/client-ca.pem', metricsListen: { host: '0.0.0.0', port: 9443 } });
    expect(parseServeArgs([...base, '--metrics-listen', '[::1]:0'], NO_ENV).metricsListen).toEqual({
      host: '::1',
      port: 0,
    });
    expect(parseServeArgs([...base, '--metrics-listen', ':9443'], NO_ENV).metricsListen).toEqual({
      host: '0.0.0.0',
      port: 9443,
    });
  });

  it.each([
    [['--metrics-listen', '9443'], '--metrics-listen must be host:port, not "9443"'],
    [['--metrics-listen', 'a:70000'], '--metrics-listen must be host:port, not "a:70000"'],
    [['--listen', '0.0.0.0:8443', '--metrics-listen', '0.0.0.0:8443'], '--metrics-listen must differ from --listen'],
    [['--client-ca='], '--client-ca needs a file'],
  ])('refuses %j', (flags, message) => {
    expect(() => parseServeArgs([...base, ...flags], NO_ENV)).toThrow(new UsageError(message));
  });

  it('names both in the usage', () => {
    expect(USAGE).toContain('[--client-ca <bundle.pem>] [--metrics-listen <host:port>]');
  });
});
