/**
 * The runtime directory's layout, in one place: every path the stack
 * writes under `RUNTIME_DIR`, and what reads it (nginx, the workers, the
 * bench and the tests) takes it from here.
 *
 * @module
 */

/** The paths under one runtime directory. */
export interface RuntimeLayout {
  /** The runtime directory itself. */
  root: string;
  /** The workers' Unix sockets. */
  sockets: string;
  /** nginx's own directory: its temp paths and its pid file. */
  nginxTemp: string;
  /** Static files nginx serves. */
  public: string;
  /** The rendered nginx config. */
  nginxConf: string;
  /** nginx's pid file, written once it has bound its sockets. */
  nginxPid: string;
  /** nginx's socket for the supervisor's liveness probe. */
  nginxAlive: string;
  /** The workers' program: main.ts in one file. */
  workerScript: string;
  /** The country database the workers' program imports. */
  geoDb: string;
}

/** The layout of the runtime directory `root`. */
export function runtimeLayout(root: string): RuntimeLayout {
  return {
    root,
    sockets: `${root}/sockets`,
    nginxTemp: `${root}/nginx`,
    public: `${root}/public`,
    nginxConf: `${root}/nginx.conf`,
    // Where nginx, which runs as the stack's account, may write.
    nginxPid: `${root}/nginx/nginx.pid`,
    nginxAlive: `${root}/nginx/alive.sock`,
    workerScript: `${root}/worker.js`,
    geoDb: `${root}/geo.mmdb`,
  };
}

/** The socket path of worker `index` under the runtime directory `root`. */
export function workerSocket(root: string, index: number): string {
  return `${runtimeLayout(root).sockets}/worker-${index}.sock`;
}
