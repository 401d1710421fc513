/**
 * The account nginx's workers run as when the stack runs as root: one of
 * the stack's own, so that the runtime directory and the workers' sockets
 * are open to nginx and to no one else (not to every process that runs as
 * `nobody` or in `nogroup`). The image runs everything as this account
 * already (Dockerfile), so there the stack never switches users.
 *
 * @module
 */

/** The account's user and group name (the Dockerfile's too). */
export const NGINX_ACCOUNT = "ip-timestamp";

/** A user and its group, as nginx's `user` directive names them. */
export interface NginxAccount {
  /** The user name. */
  user: string;
  /** Its group's name. */
  group: string;
  /** Its user id: every child of a root supervisor runs as it. */
  uid: number;
  /** Its group's id, which the runtime directory is shared with. */
  gid: number;
}

async function idOf(file: string, name: string): Promise<number | undefined> {
  const line = (await Deno.readTextFile(file)).split("\n")
    .find((l) => l.startsWith(`${name}:`));
  return line === undefined ? undefined : Number(line.split(":")[2]);
}

/**
 * The account nginx's workers run as, created as a system account (no
 * home, no shell) if it does not exist yet; throws if it cannot be.
 */
export async function nginxAccount(): Promise<NginxAccount> {
  const name = NGINX_ACCOUNT;
  if (await idOf("/etc/passwd", name) === undefined) {
    const hasGroup = await idOf("/etc/group", name) !== undefined;
    const { success, stderr } = await new Deno.Command("useradd", {
      args: [
        "--system",
        ...(hasGroup ? ["--gid", name] : ["--user-group"]),
        "--no-create-home",
        "--home-dir",
        "/nonexistent",
        "--shell",
        "/usr/sbin/nologin",
        name,
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    // Another stack starting at the same moment may have made it first.
    if (!success && await idOf("/etc/passwd", name) === undefined) {
      throw new Error(
        `cannot create the account ${name} for nginx's workers: ${
          new TextDecoder().decode(stderr).trim()
        }`,
      );
    }
  }
  const uid = await idOf("/etc/passwd", name);
  const gid = await idOf("/etc/group", name);
  if (uid === undefined || gid === undefined) {
    throw new Error(`no account ${name} in /etc/passwd and /etc/group`);
  }
  return { user: name, group: name, uid, gid };
}
