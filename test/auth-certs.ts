/**
 * Test PKI made with Debian's openssl CLI at test time: CAs, a server
 * certificate for 127.0.0.1/localhost, client certificates named after
 * clients. EC P-256 keys (fast), valid for one day.
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface CertFiles {
  certFile: string;
  keyFile: string;
  cert: Buffer;
  key: Buffer;
}

export interface Ca extends CertFiles {
  name: string;
}

/** A temporary directory, removed by the returned function. */
export function tempDir(prefix = "promproxy-auth-"): { dir: string; remove(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run("openssl", args, { cwd });
  } catch (e) {
    const err = e as { stderr?: string; code?: string };
    if (err.code === "ENOENT") throw new Error("these tests need the openssl CLI: apt-get install -y openssl");
    throw new Error(`openssl ${args.join(" ")} failed: ${err.stderr ?? String(e)}`);
  }
}

function read(certFile: string, keyFile: string): CertFiles {
  return { certFile, keyFile, cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) };
}

/** A self-signed CA named `name` (files `name.crt`, `name.key` in `dir`). */
export async function createCa(dir: string, name: string): Promise<Ca> {
  const certFile = path.join(dir, `${name}.crt`);
  const keyFile = path.join(dir, `${name}.key`);
  await openssl(
    [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
      "-keyout", keyFile, "-out", certFile, "-days", "1", "-subj", `/CN=${name}`,
      "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    ],
    dir,
  );
  return { name, ...read(certFile, keyFile) };
}

/**
 * A certificate signed by `ca`, in `dir` as `file.crt` / `file.key`.
 * `sans` like ["IP:127.0.0.1", "DNS:localhost"]; `usage` "server" or "client".
 */
export async function issue(
  ca: Ca,
  dir: string,
  file: string,
  o: { cn: string; sans?: string[]; usage: "server" | "client" },
): Promise<CertFiles> {
  const certFile = path.join(dir, `${file}.crt`);
  const keyFile = path.join(dir, `${file}.key`);
  const csr = path.join(dir, `${file}.csr`);
  const ext = path.join(dir, `${file}.ext`);
  await openssl(
    ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", keyFile, "-out", csr, "-subj", `/CN=${o.cn}`],
    dir,
  );
  const lines = [
    "basicConstraints=CA:FALSE",
    `extendedKeyUsage=${o.usage === "server" ? "serverAuth" : "clientAuth"}`,
    ...(o.sans?.length ? [`subjectAltName=${o.sans.join(",")}`] : []),
  ];
  fs.writeFileSync(ext, lines.join("\n") + "\n");
  const serial = "0x" + Buffer.from(crypto.getRandomValues(new Uint8Array(8))).toString("hex");
  await openssl(
    ["x509", "-req", "-in", csr, "-CA", ca.certFile, "-CAkey", ca.keyFile, "-set_serial", serial, "-days", "1", "-out", certFile, "-extfile", ext],
    dir,
  );
  return read(certFile, keyFile);
}

/** The usual set: a CA, a server certificate for 127.0.0.1, and a rogue CA nobody trusts. */
export async function testPki(dir: string): Promise<{ ca: Ca; server: CertFiles; rogueCa: Ca }> {
  const [ca, rogueCa] = await Promise.all([createCa(dir, "ca"), createCa(dir, "rogue-ca")]);
  const server = await issue(ca, dir, "server", { cn: "127.0.0.1", sans: ["IP:127.0.0.1", "DNS:localhost"], usage: "server" });
  return { ca, server, rogueCa };
}
