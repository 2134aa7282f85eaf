// An embedded MQTT broker (aedes over node:net) so that the quickstart and a lone device work with no
// infrastructure. It speaks MQTT 3.1.1 only (aedes has no MQTT 5).
import { createServer, type Server, type Socket } from 'node:net';
import { Aedes } from 'aedes';
import type { Logger } from './log.js';

export interface EmbeddedBrokerOptions {
  host: string;
  /** 0 = any free port. A busy port falls back to a free one (with a warning) instead of failing. */
  port: number;
  log?: Logger;
}

export class EmbeddedBroker {
  private aedes: Aedes | undefined;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private boundPort: number | undefined;

  constructor(private readonly opts: EmbeddedBrokerOptions) {}

  /** Starts listening; resolves with the bound port. */
  async start(): Promise<number> {
    if (this.boundPort !== undefined) return this.boundPort;
    const aedes = await Aedes.createBroker();
    const server = createServer((socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      aedes.handle(socket);
    });
    aedes.on('clientError', (client, err) => this.opts.log?.debug('embedded broker: client error', { client: client?.id, error: err.message }));
    try {
      try {
        await listen(server, this.opts.host, this.opts.port);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || this.opts.port === 0) throw e;
        await listen(server, this.opts.host, 0);
        const port = (server.address() as { port: number }).port;
        this.opts.log?.warn(`port ${this.opts.port} on ${this.opts.host} is busy; embedded MQTT broker uses port ${port} instead`, {
          wantedPort: this.opts.port,
          port,
        });
      }
    } catch (e) {
      await new Promise<void>((r) => aedes.close(() => r()));
      throw e;
    }
    this.aedes = aedes;
    this.server = server;
    this.boundPort = (server.address() as { port: number }).port;
    return this.boundPort;
  }

  get port(): number | undefined {
    return this.boundPort;
  }

  get url(): string | undefined {
    if (this.boundPort === undefined) return undefined;
    const host = this.opts.host.includes(':') ? `[${this.opts.host}]` : this.opts.host;
    return `mqtt://${host}:${this.boundPort}`;
  }

  async stop(): Promise<void> {
    const { aedes, server } = this;
    this.aedes = this.server = this.boundPort = undefined;
    if (!server || !aedes) return;
    const closed = new Promise<void>((r) => server.close(() => r()));
    await new Promise<void>((r) => aedes.close(() => r()));
    // aedes closes the MQTT clients it knows; sockets still mid-handshake would keep server.close() waiting.
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => reject(e);
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      resolve();
    });
  });
}
