import type { V1Container } from '@kubernetes/client-node';

/**
 * What an image would run, for the images the sandbox knows (documented in the
 * README), and Kubernetes' rules for combining a container's `command`/`args` with
 * the image's ENTRYPOINT and CMD:
 * - command set: command + args (the image's ENTRYPOINT and CMD are ignored);
 * - only args: ENTRYPOINT + args;
 * - neither: ENTRYPOINT + CMD.
 * Pure.
 */
export interface ImageConfig {
  readonly entrypoint: readonly string[];
  readonly cmd: readonly string[];
  /** Programs the image has as busybox applets (used when the machine lacks the program). */
  readonly busybox: boolean;
}

/** The repository of an image reference, without registry defaults, tag or digest: `docker.io/library/nginx:1` → `nginx`. */
export function imageRepo(image: string): string {
  let ref = image.replace(/@.*$/, '');
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  if (colon > slash) ref = ref.slice(0, colon);
  return ref.replace(/^(docker\.io|index\.docker\.io)\//, '').replace(/^library\//, '');
}

const TABLE: readonly { match: (repo: string) => boolean; config: ImageConfig }[] = [
  { match: (r) => r === 'busybox', config: { entrypoint: [], cmd: ['sh'], busybox: true } },
  { match: (r) => r === 'alpine', config: { entrypoint: [], cmd: ['/bin/sh'], busybox: true } },
  { match: (r) => r === 'alpine/socat', config: { entrypoint: ['socat'], cmd: [], busybox: true } },
  { match: (r) => r === 'nicolaka/netshoot', config: { entrypoint: [], cmd: ['zsh'], busybox: false } },
  { match: (r) => r.endsWith('e2e-test-images/agnhost'), config: { entrypoint: ['/agnhost'], cmd: ['pause'], busybox: false } },
  { match: (r) => r.endsWith('/pause') || r === 'pause', config: { entrypoint: ['/pause'], cmd: [], busybox: false } },
  { match: (r) => r === 'nginx' || r.endsWith('/nginx') || r.startsWith('nginxinc/'), config: { entrypoint: ['/docker-entrypoint.sh'], cmd: ['nginx', '-g', 'daemon off;'], busybox: false } },
  { match: (r) => /(^|\/)etcd(-development\/etcd)?$/.test(r) || r.endsWith('coreos/etcd'), config: { entrypoint: [], cmd: ['/usr/local/bin/etcd'], busybox: false } },
];

export function imageConfig(image: string): ImageConfig | undefined {
  const repo = imageRepo(image);
  return TABLE.find((t) => t.match(repo))?.config;
}

/** The argv a container runs by Kubernetes' rules, or undefined when nothing says what to run. */
export function containerArgv(c: Pick<V1Container, 'command' | 'args'>, img: ImageConfig | undefined): string[] | undefined {
  const command = c.command ?? [];
  const args = c.args ?? [];
  if (command.length > 0) return [...command, ...args];
  if (img === undefined) return args.length > 0 ? [...args] : undefined;
  const argv = [...img.entrypoint, ...(c.args !== undefined ? args : img.cmd)];
  return argv.length > 0 ? argv : undefined;
}

/**
 * Programs that stand for an image's own binary, with the machine's programs:
 * the pause binaries sleep; nginx (through its entrypoint script or directly) serves
 * its html folder with busybox httpd on port 80; agnhost runs this checkout's
 * implementation of the subcommands the upstream suites use.
 */
export function substitute(argv: readonly string[], ctx: { readonly html: string; readonly agnhost: readonly string[] }): string[] {
  const base = (argv[0] ?? '').split('/').pop() ?? '';
  if (base === 'pause') return ['sleep', 'infinity'];
  if (base === 'docker-entrypoint.sh' && argv[1] === 'nginx') return substitute(argv.slice(1), ctx);
  if (base === 'nginx') return ['busybox', 'httpd', '-f', '-p', '80', '-h', ctx.html];
  if (base === 'agnhost') return [...ctx.agnhost, ...argv.slice(1)];
  return [...argv];
}

export type Resolved = { readonly argv: string[] } | { readonly missing: string };

/**
 * Finds argv[0] on this machine: an absolute path that exists, else its base name on
 * PATH, else (for busybox-based images) a busybox applet of that name. `which`
 * returns the path of a program or undefined; `applets` is what busybox offers.
 */
export function resolveProgram(argv: readonly string[], busybox: boolean, which: (name: string) => string | undefined, applets: ReadonlySet<string>): Resolved {
  const [prog, ...rest] = argv;
  if (prog === undefined || prog === '') return { missing: '(empty command)' };
  const base = prog.split('/').pop() ?? prog;
  const found = prog.startsWith('/') ? (which(prog) ?? which(base)) : which(prog);
  if (found !== undefined) return { argv: [found, ...rest] };
  if (busybox && applets.has(base)) {
    const bb = which('busybox');
    if (bb !== undefined) return { argv: [bb, base, ...rest] };
  }
  return { missing: prog };
}

/**
 * Kubernetes' `$(VAR)` expansion in command and args: a reference to a variable the
 * container defines is replaced by its value, `$$` stands for a literal `$`, and any
 * other reference is left as written. Pure.
 */
export function expandVars(s: string, env: Readonly<Record<string, string>>): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch !== '$' || i + 1 >= s.length) {
      out += ch;
      continue;
    }
    const next = s[i + 1];
    if (next === '$') {
      out += '$';
      i++;
      continue;
    }
    if (next === '(') {
      const close = s.indexOf(')', i + 2);
      if (close > 0) {
        const name = s.slice(i + 2, close);
        const v = env[name];
        out += v ?? s.slice(i, close + 1);
        i = close;
        continue;
      }
    }
    out += ch;
  }
  return out;
}
