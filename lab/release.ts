// An earlier release of Trellis, built from this repository's own history, for
// upgrade tests: `buildRelease(commit)` extracts that commit's tree (git
// archive) into a directory of its own under the system temp directory, links
// this checkout's node_modules into it and compiles it there (tsc, and the
// esbuild bundle of the CNI plugin when that release had one). The result is
// cached by commit, so a second test or run reuses it.
//
// Nothing of the current tree leaks into the old build but node_modules: the
// old release compiles against the packages it declared then, which are a
// subset of today's.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './trellis.js';

/** The release that wrote the original (version 0.1.0) record layout. */
export const RELEASE_0_1_0 = '1888df63e00cac02e7a4058761098e4986e683f0';

export interface Release {
  readonly commit: string;
  /** Root of the extracted tree. */
  readonly dir: string;
  /** The release's trellisd entry point (an ES module run with node). */
  readonly trellisd: string;
  readonly trellisctl: string;
  /** The release's bundled CNI plugin. */
  readonly plugin: string;
}

function run(cmd: string, args: string[], cwd: string, input?: Buffer): Buffer {
  const r = spawnSync(cmd, args, { cwd, input, maxBuffer: 512 * 1024 * 1024, timeout: 300_000 });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr?.toString().slice(-2000)}`);
  }
  return r.stdout;
}

/** Why an upgrade test cannot run here, or false: the commit must be in this clone's history. */
export function needRelease(commit: string): string | false {
  const r = spawnSync('git', ['-C', ROOT, 'cat-file', '-e', `${commit}^{commit}`]);
  return r.status === 0 ? false : `release ${commit.slice(0, 12)} is not in this clone's git history (shallow clone?)`;
}

/** Builds (or reuses) the release at `commit`. */
export function buildRelease(commit: string): Release {
  const dir = join(tmpdir(), `trellis-release-${commit.slice(0, 12)}`);
  const release: Release = {
    commit,
    dir,
    trellisd: join(dir, 'dist', 'daemon', 'trellisd.js'),
    trellisctl: join(dir, 'dist', 'src', 'cli', 'trellisctl.js'),
    plugin: join(dir, 'dist', 'cni', 'trellis.cjs'),
  };
  const done = join(dir, '.built');
  if (existsSync(done)) return release;
  const work = `${dir}.${process.pid}.tmp`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    const tar = run('git', ['-C', ROOT, 'archive', '--format=tar', commit], ROOT);
    run('tar', ['-x', '-C', work], work, tar);
    symlinkSync(join(ROOT, 'node_modules'), join(work, 'node_modules'));
    run(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], work);
    run(
      process.execPath,
      [join(ROOT, 'node_modules', 'esbuild', 'bin', 'esbuild'), 'cni-plugin/trellis.ts', '--bundle', '--platform=node', '--target=node20', '--format=cjs', '--outfile=dist/cni/trellis.cjs', '--log-level=warning'],
      work,
    );
    writeFileSync(join(work, '.built'), `${commit}\n`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(work, dir);
  } catch (err) {
    rmSync(work, { recursive: true, force: true });
    throw err;
  }
  return release;
}
