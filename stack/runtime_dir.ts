/**
 * The runtime directory: every path the stack writes under `RUNTIME_DIR`,
 * and its preparation without trusting what is there: another user's, a
 * link, one others may write or holding what the stack does not make is
 * refused; one it did not create keeps its mode; files are created
 * exclusively, never through a link.
 *
 * @module
 */
import { ConfigError } from "../service/config.ts";
import { bytesOf, contentTime, STATIC_FILES } from "../service/static_files.ts";

/** The paths under one runtime directory. */
export interface RuntimeLayout {
  /** The workers' Unix sockets. */
  sockets: string;
  /** nginx's own: its temp paths, pid file and probe socket. */
  nginx: string;
  /** Static files nginx serves. */
  public: string;
  /** The rendered nginx config. */
  nginxConf: string;
  /** nginx's pid file, written once it has bound its sockets. */
  nginxPid: string;
  /** nginx's socket for the supervisor's liveness probe. */
  nginxAlive: string;
}

/** The layout of the runtime directory `root`. */
export function runtimeLayout(root: string): RuntimeLayout {
  return {
    sockets: `${root}/sockets`,
    nginx: `${root}/nginx`,
    public: `${root}/public`,
    nginxConf: `${root}/nginx.conf`,
    nginxPid: `${root}/nginx/nginx.pid`,
    nginxAlive: `${root}/nginx/alive.sock`,
  };
}

/** The socket path of worker `index` under the runtime directory `root`. */
export function workerSocket(root: string, index: number): string {
  return `${root}/sockets/worker-${index}.sock`;
}

// What the stack makes at the top of its directory: true for a directory.
const TOP = new Map([
  ["sockets", true],
  ["nginx", true],
  ["public", true],
  ["nginx.conf", false],
]);

// A problem with the runtime directory: a setting to fix, exit code 2.
const invalid = (root: string, why: string) =>
  new ConfigError(`Invalid RUNTIME_DIR ${JSON.stringify(root)}: ${why}`);

// Why an existing directory cannot be the runtime directory (`/tmp`, `/etc`
// cannot), or undefined. Reads only.
async function refusal(root: string): Promise<string | undefined> {
  const info = await Deno.lstat(root);
  if (info.isSymlink) return "it is a symbolic link";
  if (!info.isDirectory) return "it is not a directory";
  if (info.uid !== Deno.uid()) {
    return `it belongs to uid ${info.uid}, not to this process's ${Deno.uid()}`;
  }
  if ((info.mode! & 0o022) !== 0) {
    return `it is writable by others (mode 0${
      (info.mode! & 0o7777).toString(8)
    })`;
  }
  for await (const entry of Deno.readDir(root)) {
    if (TOP.get(entry.name) !== entry.isDirectory) {
      return `it holds ${
        JSON.stringify(entry.name)
      }, which the stack does not make there`;
    }
  }
  return undefined;
}

/** A runtime directory ready for this start, and how to undo it. */
export class RuntimeDir {
  /** The directory `root`, which this start `created` or found. */
  constructor(readonly root: string, readonly created = false) {}

  /** Writes a new file, never through a link (O_EXCL). */
  async writeFile(path: string, bytes: Uint8Array): Promise<void> {
    await Deno.writeFile(path, bytes, { createNew: true, mode: 0o600 })
      .catch((err) => {
        throw invalid(this.root, `cannot write ${path} (${err.message})`);
      });
  }

  /**
   * Removes what the stack makes: the directory if this start created it,
   * else what stands under the stack's names (links, never followed).
   */
  async discard(): Promise<void> {
    const { root } = this;
    const paths = this.created
      ? [root]
      : [...TOP.keys()].map((n) => `${root}/${n}`);
    for (const path of paths) {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    }
  }
}

// Creates the runtime directory (true), or checks the one there (false).
async function openRoot(root: string): Promise<boolean> {
  try {
    // Not recursive: a directory someone made first must fail here.
    await Deno.mkdir(root, { mode: 0o700 });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      await Deno.mkdir(root, { recursive: true, mode: 0o700 });
    } else if (err instanceof Deno.errors.AlreadyExists) {
      const why = await refusal(root);
      if (why) throw invalid(root, why);
      return false;
    } else throw err;
  }
  // Made a moment ago, so ours, unless someone raced us to it.
  const info = await Deno.lstat(root);
  if (info.isSymlink || !info.isDirectory || info.uid !== Deno.uid()) {
    throw invalid(root, "another user made it while the stack started");
  }
  await Deno.chmod(root, 0o700);
  return true;
}

/**
 * Checks or creates the runtime directory, clears what an earlier start
 * left in it, and writes the static files nginx serves; throws a
 * {@linkcode ConfigError} when it cannot, after removing what it made.
 */
export async function prepareRuntimeDir(root: string): Promise<RuntimeDir> {
  const created = await openRoot(root).catch((err) => {
    throw err instanceof ConfigError ? err : invalid(root, err.message);
  });
  const dir = new RuntimeDir(root, created);
  try {
    if (!created) await dir.discard();
    const { sockets, nginx, public: pub } = runtimeLayout(root);
    for (const path of [sockets, nginx, pub]) {
      await Deno.mkdir(path, { mode: 0o700 });
    }
    for (const [path, file] of STATIC_FILES) {
      const target = `${pub}${path}`;
      await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), {
        recursive: true,
        mode: 0o700,
      });
      await dir.writeFile(target, bytesOf(file));
      // nginx's ETag and Last-Modified come from the mtime (static_files.ts).
      await Deno.utime(target, contentTime(file), contentTime(file));
    }
    return dir;
  } catch (err) {
    await dir.discard();
    throw err instanceof ConfigError ? err : invalid(root, String(err));
  }
}
