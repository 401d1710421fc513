/**
 * Prepares the runtime directory without trusting what is already there.
 *
 * The default `/tmp/ip-timestamp` is a name anyone can take first, and the
 * stack often runs as root: so it refuses a directory owned by another user
 * or writable by others, never follows a symbolic link it did not make,
 * never changes the owner or mode of a directory it did not create, and
 * creates each file it writes exclusively (after removing what stood
 * there). As root, every directory on the way must be closed to other
 * users too (or sticky, like /tmp), so none can be swapped under it.
 *
 * @module
 */
import { type RuntimeLayout, runtimeLayout } from "./runtime_dir.ts";
import { bytesOf, contentTime, STATIC_FILES } from "../service/static_files.ts";

/** Why the runtime directory cannot be used; the supervisor exits 2. */
export class RuntimeDirError extends Error {
  /** The error's name. */
  override name = "RuntimeDirError";
}

/**
 * Who the directory is for. As root, `gid` is the group of the account
 * nginx's workers run as (nginx_user.ts): it may enter, no one else may.
 */
export interface RuntimeOwner {
  /** This process's user id. */
  uid: number;
  /** As root, the group of nginx's account. */
  gid?: number;
}

// What the stack makes at the top of its directory, and of which kind.
function topEntries(layout: RuntimeLayout): Map<string, "dir" | "file"> {
  const name = (path: string) => path.slice(layout.root.length + 1);
  return new Map([
    [name(layout.sockets), "dir"],
    [name(layout.nginxTemp), "dir"],
    [name(layout.public), "dir"],
    [name(layout.nginxConf), "file"],
    [name(layout.workerScript), "file"],
    [name(layout.geoDb), "file"],
  ]);
}

function octal(mode: number): string {
  return "0" + (mode & 0o7777).toString(8);
}

// The mode each directory gets: as root, the stack's account (which every
// child runs as) may enter, and write where its children write (sockets,
// nginx's own); no one else may.
function dirMode(owner: RuntimeOwner, writable: boolean): number {
  if (owner.gid === undefined) return 0o700;
  return writable ? 0o2770 : 0o750;
}

async function lstatOrUndefined(
  path: string,
): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

interface PathInfo {
  uid: number;
  mode: number;
  isLink: boolean;
}

// The supervisor may read only its runtime directory: `stat` reports the
// directories above it. With `follow`, of what each link points to.
async function statAll(paths: string[], follow: boolean): Promise<PathInfo[]> {
  const out = await new Deno.Command("stat", {
    args: [...(follow ? ["-L"] : []), "-c", "%u %f", "--", ...paths],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new RuntimeDirError(
      `cannot inspect the directories above it (${
        new TextDecoder().decode(out.stderr).trim()
      })`,
    );
  }
  return new TextDecoder().decode(out.stdout).trim().split("\n").map((l) => {
    const [uid, mode] = l.split(" ");
    const bits = parseInt(mode, 16);
    return {
      uid: Number(uid),
      mode: bits,
      isLink: (bits & 0o170000) === 0o120000,
    };
  });
}

async function realPath(path: string): Promise<string> {
  const out = await new Deno.Command("realpath", {
    args: ["-e", "--", path],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new RuntimeDirError(
      `cannot resolve ${path} (${new TextDecoder().decode(out.stderr).trim()})`,
    );
  }
  return new TextDecoder().decode(out.stdout).trim();
}

// Every directory above the runtime directory, as root: owned by root,
// closed to writers other than root (or sticky), and open for nginx's
// workers to pass through.
async function checkAncestors(root: string): Promise<void> {
  const prefixes = (path: string) => {
    const parts = path.split("/").filter(Boolean);
    return parts.map((_, i) => "/" + parts.slice(0, i).join("/"));
  };
  // Where links lead too: a link of root's into another user's directory
  // would let that user swap what lies behind it.
  const parent = root.slice(0, root.lastIndexOf("/")) || "/";
  const paths = [
    ...new Set([...prefixes(root), ...prefixes(await realPath(parent) + "/x")]),
  ];
  const [links, targets] = await Promise.all([
    statAll(paths, false),
    statAll(paths, true),
  ]);
  for (const [i, path] of paths.entries()) {
    const { uid, mode } = targets[i];
    if (links[i].isLink && links[i].uid !== 0) {
      throw new RuntimeDirError(
        `${path} is a symbolic link of uid ${links[i].uid}`,
      );
    }
    if (uid !== 0) {
      throw new RuntimeDirError(`${path} belongs to uid ${uid}, not root`);
    }
    if ((mode & 0o022) !== 0 && (mode & 0o1000) === 0) {
      throw new RuntimeDirError(
        `${path} is writable by others (mode ${octal(mode)}) and not sticky`,
      );
    }
    if ((mode & 0o001) === 0) {
      throw new RuntimeDirError(
        `nginx's workers cannot pass through ${path} (mode ${octal(mode)})`,
      );
    }
  }
}

/**
 * Why an existing directory cannot be the runtime directory, or undefined
 * when it can: it must be a real directory of this user, closed to other
 * writers, open to nginx's group as root, and hold only what the stack
 * makes. Reads only; `/tmp` and `/etc` are refused here.
 */
export async function refusal(
  root: string,
  owner: RuntimeOwner,
): Promise<string | undefined> {
  const info = await Deno.lstat(root);
  const mode = info.mode ?? 0;
  if (info.isSymlink) return "it is a symbolic link";
  if (!info.isDirectory) return "it is not a directory";
  if (info.uid !== owner.uid) {
    return `it belongs to uid ${info.uid}, not to this process's ${owner.uid}`;
  }
  if ((mode & 0o022) !== 0) {
    return `it is writable by others (mode ${octal(mode)})`;
  }
  if (
    owner.gid !== undefined && (mode & 0o001) === 0 &&
    !(info.gid === owner.gid && (mode & 0o010) !== 0)
  ) {
    // As an older stack left it (group nogroup): the stack re-modes only
    // what it creates, so say how to get there.
    return `nginx's workers (gid ${owner.gid}) cannot enter it (mode ${
      octal(mode)
    }, gid ${info.gid}); if a stack made it, remove it and start again`;
  }
  const expected = topEntries(runtimeLayout(root));
  for await (const entry of Deno.readDir(root)) {
    const kind = expected.get(entry.name);
    const fits = kind === "dir"
      ? entry.isDirectory
      : kind === "file" && (entry.isFile || entry.isSymlink);
    if (!fits) {
      return `it holds ${
        JSON.stringify(entry.name)
      }, which the stack does not make there`;
    }
  }
  return undefined;
}

/** A runtime directory ready for this start, and how to undo it. */
export class RuntimeDir {
  #made: string[] = [];

  /** A directory {@linkcode prepareRuntimeDir} checked or made. */
  constructor(
    /** Its layout. */
    readonly layout: RuntimeLayout,
    /** Who it is for. */
    readonly owner: RuntimeOwner,
    /** Whether this start created the directory itself. */
    readonly created: boolean,
  ) {}

  /** Records a path this start made, to remove it on {@linkcode discard}. */
  made(path: string): void {
    this.#made.push(path);
  }

  /**
   * A directory under the runtime directory: made with its mode and group
   * if missing; if there, it must already be exactly that.
   */
  async dir(path: string, writable = false): Promise<void> {
    const mode = dirMode(this.owner, writable);
    try {
      await Deno.mkdir(path, { mode: 0o700 });
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
      const info = await Deno.lstat(path);
      const group = this.owner.gid ?? info.gid;
      if (
        info.isSymlink || !info.isDirectory || info.uid !== this.owner.uid ||
        info.gid !== group || ((info.mode ?? 0) & 0o7777) !== mode
      ) {
        throw new RuntimeDirError(
          `${path} is not the directory the stack makes (a real directory, mode ${
            octal(mode)
          }${
            this.owner.gid === undefined ? "" : `, gid ${this.owner.gid}`
          }): remove it`,
        );
      }
      return;
    }
    this.made(path);
    if (this.owner.gid !== undefined) {
      await Deno.chown(path, this.owner.uid, this.owner.gid);
    }
    await Deno.chmod(path, mode);
  }

  /**
   * Makes room for a file the stack writes: whatever stands at `path` (a
   * file, or a link, which is removed, never followed) goes.
   */
  async clear(path: string): Promise<void> {
    const info = await lstatOrUndefined(path);
    if (info?.isDirectory) {
      throw new RuntimeDirError(`${path} is a directory: remove it`);
    }
    if (info) await Deno.remove(path);
    this.made(path);
  }

  /** Writes a file exclusively, readable by nginx's group as root. */
  async writeFile(path: string, data: string | Uint8Array): Promise<void> {
    await this.clear(path);
    const bytes = typeof data === "string"
      ? new TextEncoder().encode(data)
      : data;
    // createNew: O_EXCL, which also refuses to follow a link.
    await Deno.writeFile(path, bytes, { createNew: true, mode: 0o600 });
    if (this.owner.gid !== undefined) {
      await Deno.chown(path, this.owner.uid, this.owner.gid);
      await Deno.chmod(path, 0o640);
    }
  }

  /** Removes what this start made: the whole directory if it created it. */
  async discard(): Promise<void> {
    if (this.created) {
      await Deno.remove(this.layout.root, { recursive: true }).catch(() => {});
      return;
    }
    for (const path of this.#made.reverse()) {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    }
    this.#made = [];
  }
}

// Creates the runtime directory, or checks the one that is there; true
// if this start created it.
async function createOrCheckRoot(
  root: string,
  owner: RuntimeOwner,
): Promise<boolean> {
  let created = true;
  try {
    // Not recursive: a directory someone made first must fail here.
    await Deno.mkdir(root, { mode: 0o700 });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      // The directories above are missing: made here, open for nginx's
      // workers to pass (the runtime directory's own mode is set below),
      // and checked below.
      await Deno.mkdir(root, { recursive: true, mode: 0o755 });
    } else if (err instanceof Deno.errors.AlreadyExists) {
      created = false;
    } else {
      throw err;
    }
  }
  if (owner.uid === 0) {
    await checkAncestors(root).catch(async (err) => {
      if (created) await Deno.remove(root).catch(() => {});
      throw err;
    });
  }
  if (!created) {
    const why = await refusal(root, owner);
    if (why) throw new RuntimeDirError(why);
    return false;
  }
  // Made a moment ago, so ours, unless someone raced us to it.
  const info = await Deno.lstat(root);
  if (info.isSymlink || !info.isDirectory || info.uid !== owner.uid) {
    throw new RuntimeDirError("another user made it while the stack started");
  }
  if (owner.gid !== undefined) await Deno.chown(root, owner.uid, owner.gid);
  await Deno.chmod(root, dirMode(owner, false));
  return true;
}

/**
 * Checks or creates the runtime directory and writes the static files
 * nginx serves; throws {@linkcode RuntimeDirError} (or a file-system error)
 * when it cannot, after removing whatever it made.
 */
export async function prepareRuntimeDir(
  root: string,
  owner: RuntimeOwner,
): Promise<RuntimeDir> {
  const created = await createOrCheckRoot(root, owner);
  const dir = new RuntimeDir(runtimeLayout(root), owner, created);
  try {
    const layout = dir.layout;
    await dir.dir(layout.sockets, true);
    await dir.dir(layout.nginxTemp, true);
    await dir.dir(layout.public);
    for (const [path, file] of STATIC_FILES) {
      const target = `${layout.public}${path}`;
      let parent = layout.public;
      for (const part of path.split("/").slice(1, -1)) {
        parent += `/${part}`;
        await dir.dir(parent);
      }
      await dir.writeFile(target, bytesOf(file));
      // nginx's ETag and Last-Modified come from the mtime (static_files.ts).
      await Deno.utime(target, contentTime(file), contentTime(file));
    }
    return dir;
  } catch (err) {
    await dir.discard();
    throw err;
  }
}
