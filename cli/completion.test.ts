import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { projectRoot } from '../sandbox/versions.ts';
import { bashScript, zshScript } from './completion.ts';
import { registry } from './registry.ts';

const commands = registry();

/** What bash completes for the command line `line` (the last word is the one being completed; '' for a fresh word). */
function bashComplete(line: string): string[] {
  const ws = line.split(' ');
  const script = `${bashScript(commands)}
kubectl() { echo ctx-a; echo ctx-b; }
COMP_WORDS=(${ws.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${ws.length - 1}
_isthmus; printf '%s\\n' "\${COMPREPLY[@]}"`;
  return execFileSync('bash', ['--norc', '-c', script], { encoding: 'utf8', cwd: join(projectRoot(), 'cli') }).split('\n').filter((x) => x !== '');
}

test('bash: commands, subcommands, options, option values, contexts, files', () => {
  assert.equal(bashComplete('isthmus ver'), ['verify', 'versions'].filter((c) => commands.has(c)));
  assert.ok(bashComplete('isthmus ').includes('completion'));
  assert.equal(bashComplete('isthmus show '), ['connections', 'endpoints', 'gateways', 'networks', 'exports', 'imports', 'versions', 'all']);
  assert.equal(bashComplete('isthmus show gateways -o '), ['table', 'json', 'yaml']);
  assert.equal(bashComplete('isthmus join x.json --cable-driver w'), ['wireguard']);
  assert.equal(bashComplete('isthmus verify --context '), ['ctx-a', 'ctx-b']);
  assert.equal(bashComplete('isthmus verify --tocontext ctx-b'), ['ctx-b']);
  assert.equal(bashComplete('isthmus broker deploy --ser'), ['--service-type']);
  // a subcommand's own options only after it
  assert.not.ok(bashComplete('isthmus broker --').includes('--service-type'));
  assert.ok(bashComplete('isthmus broker --').includes('--etcd'));
  assert.equal(bashComplete('isthmus certs ca '), ['create', 'rotate']);
  assert.equal(bashComplete('isthmus completion '), ['bash', 'zsh']);
  // not an option and past the subcommand: file names
  assert.ok(bashComplete('isthmus join completion.t').includes('completion.ts'));
  assert.equal(bashComplete('isthmus nosuch --'), []);
});

/**
 * The candidates zsh's script offers for `line` (its last word the one being completed), run by
 * the real zsh with the completion system's builtins stubbed to print what they are given
 * (unfiltered: zsh itself matches them against the prefix); `<files>` when it falls back to files.
 */
function zshComplete(line: string): string[] {
  const ws = line.split(' ');
  const script = `_describe() { local -a arr; arr=("\${(@P)2}"); print -l -- "\${arr[@]%%:*}"; }
compadd() { [[ $1 == -- ]] && shift; print -l -- "$@"; }
_files() { print -- '<files>'; }
compdef() { :; }
kubectl() { print ctx-a; print ctx-b; }
${zshScript(commands)}
words=(${ws.map((w) => `'${w}'`).join(' ')}); CURRENT=${ws.length}; PREFIX='${ws[ws.length - 1] ?? ''}'
_isthmus`;
  return execFileSync('zsh', ['-f', '-c', script], { encoding: 'utf8' }).split('\n').filter((x) => x !== '');
}

test('zsh (the real shell; ./setup installs it): commands, subcommands, options, option values, contexts, files', () => {
  assert.equal(zshComplete('isthmus '), [...commands.keys()]);
  assert.equal(zshComplete('isthmus show '), ['connections', 'endpoints', 'gateways', 'networks', 'exports', 'imports', 'versions', 'all']);
  assert.equal(zshComplete('isthmus show gateways -o '), ['table', 'json', 'yaml']);
  assert.equal(zshComplete('isthmus join x.json --cable-driver '), ['wireguard', 'ipsec', 'vxlan']);
  assert.equal(zshComplete('isthmus verify --context '), ['ctx-a', 'ctx-b']);
  assert.ok(zshComplete('isthmus broker deploy --ser').includes('--service-type'));
  // a subcommand's own options only after it
  assert.not.ok(zshComplete('isthmus broker --').includes('--service-type'));
  assert.ok(zshComplete('isthmus broker --').includes('--etcd'));
  assert.equal(zshComplete('isthmus certs ca '), ['create', 'rotate']);
  assert.equal(zshComplete('isthmus completion '), ['bash', 'zsh']);
  assert.equal(zshComplete('isthmus join completion.t'), ['<files>']);
  assert.equal(zshComplete('isthmus nosuch --'), []);
});

test('zsh: every command described with its summary, its options and subcommands listed', () => {
  const z = zshScript(commands);
  assert.ok(z.startsWith('#compdef isthmus\n'));
  for (const [name, e] of commands) {
    assert.ok(z.includes(`'${name}:`), name);
    assert.ok(z.includes(`    ${name}) flags=(--help ${e.words.flags.join(' ')}); subs=(${Object.keys(e.words.sub ?? {}).join(' ')}) ;;`), name);
  }
  assert.ok(z.includes(`'dns:serve clusterset.local (ClusterSet DNS 1.0.0) from the cluster'\\''s ServiceImports'`), 'quotes escaped');
  assert.ok(z.includes(`'broker deploy') flags+=(--kubeconfig --context --address`));
});

test('a registry word a shell would need quoted is refused', () => {
  const bad = new Map(commands);
  bad.set('x', { summary: 's', words: { flags: ['--a;rm'] }, load: () => Promise.reject(new Error('not loaded')) });
  assert.throws(() => bashScript(bad), /"--a;rm" is not a plain command or option name/);
});

/** Options a --help text names, outside `quoted commands` of other verbs and NAME=VALUE settings. */
function helpFlags(text: string): Set<string> {
  const plain = text.replace(/`[^`]*`/g, '').replace(/"[^"]*"/g, '');
  return new Set([...plain.matchAll(/(?<=^|[\s[(|])(--?[a-z][a-z0-9-]*)(?![=\w-])/gm)].map((m) => m[1] as string));
}

function help(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--no-warnings', join(projectRoot(), 'cli', 'main.ts'), ...args, '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.on('error', reject);
    child.on('close', () => resolve(out));
  });
}

test('the registry names exactly the options of every command\'s --help; each command with --context takes --kubeconfig', async () => {
  const helps = await Promise.all([...commands].map(([name, e]) => {
    const subs = Object.entries(e.words.sub ?? {}).filter(([, ws]) => ws.some((w) => w.startsWith('-')));
    return Promise.all([help([name]), ...subs.map(([s]) => help([name, s]))]);
  }));
  for (const [i, [name, e]] of [...commands].entries()) {
    const texts = helps[i] ?? [];
    const named = new Set(texts.flatMap((t) => [...helpFlags(t)]));
    const listed = new Set([...e.words.flags, ...Object.values(e.words.sub ?? {}).flat().filter((w) => w.startsWith('-')), '--help']);
    named.add('--help');
    assert.equal([...named].filter((f) => !listed.has(f)).sort(), [], `${name}: options its --help names and the registry lacks`);
    assert.equal([...listed].filter((f) => !named.has(f)).sort(), [], `${name}: options the registry lists and its --help does not name`);
    const all = [...listed];
    if (all.includes('--context')) assert.ok(all.includes('--kubeconfig'), `${name}: --context without --kubeconfig`);
  }
});

test.run();
