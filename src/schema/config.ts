import { Type, type Static } from '@sinclair/typebox';

// The agent's configuration: this one schema gives the type, the defaults and the environment overrides
// (src/agent/config.ts derives EDGETUNE_* names from it). Fields marked `x-path` are filesystem paths that
// loadConfig resolves (see the rule there). `x-remote` marks the fields a `config` job may change at run time:
// nothing that names a file, a key, the broker or a limit that protects the device.

/** Ids that end up as MQTT topic levels: no '/', '+', '#', spaces. */
export const TOPIC_LEVEL_PATTERN = '^[A-Za-z0-9._-]{1,64}$';
const TopicLevel = (opts: Record<string, unknown> = {}) => Type.String({ pattern: TOPIC_LEVEL_PATTERN, ...opts });
const PathField = (description: string) => Type.Optional(Type.String({ minLength: 1, 'x-path': true, description }));

export const TlsSchema = Type.Object(
  {
    ca: PathField('PEM file of the CA that signed the broker certificate (default: the system CAs)'),
    cert: PathField('PEM client certificate, for mutual TLS'),
    key: PathField('PEM private key of the client certificate'),
    rejectUnauthorized: Type.Boolean({ default: true, description: 'false accepts any broker certificate: tests only' }),
    servername: Type.Optional(Type.String({ minLength: 1, description: 'name to check the broker certificate against (default: the URL host)' })),
  },
  { additionalProperties: false, default: {} },
);

export const BrokerSchema = Type.Object(
  {
    url: Type.Optional(
      Type.String({
        pattern: '^(mqtts?|tcp|ssl|wss?)://',
        description: 'broker to connect to; absent means start an embedded broker on host:port',
      }),
    ),
    host: Type.String({ default: '127.0.0.1', description: 'embedded broker listen address' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 1883, description: 'embedded broker port; 0 = any free port' }),
    username: Type.Optional(Type.String()),
    password: Type.Optional(Type.String()),
    passwordFile: PathField('file holding the password (first line), so it stays out of the config and the environment'),
    clientId: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'default edgetune-{fleet}-{deviceId}' })),
    protocolVersion: Type.Union([Type.Literal(4), Type.Literal(5)], {
      default: 4,
      description: '4 = MQTT 3.1.1 (the embedded broker speaks only this), 5 = MQTT 5 (response topics honoured)',
    }),
    keepaliveS: Type.Integer({ minimum: 5, maximum: 3600, default: 30 }),
    connectTimeoutS: Type.Integer({ minimum: 1, maximum: 600, default: 30 }),
    reconnect: Type.Object(
      {
        minMs: Type.Integer({ minimum: 10, default: 1000 }),
        maxMs: Type.Integer({ minimum: 10, default: 60000 }),
      },
      { additionalProperties: false, default: {} },
    ),
    tls: TlsSchema,
  },
  { additionalProperties: false, default: {} },
);

export const DefaultJobSchema = Type.Object(
  {
    type: Type.String({ minLength: 1 }),
    params: Type.Record(Type.String(), Type.Unknown()),
    timeoutS: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
  },
  {
    additionalProperties: false,
    // The default sits on the whole job (not on params) so that a job of another type does not inherit the
    // tune parameters. The bundled example is a small CNN: 5 ms at p90 holds on a Raspberry Pi 4-class CPU.
    default: { type: 'tune', params: { model: 'examples/fashion-mnist/model.onnx', budgetMs: 5, percentile: 90 } },
  },
);

export const HeartbeatSchema = Type.Object(
  {
    intervalS: Type.Integer({ minimum: 5, maximum: 86400, default: 60, 'x-remote': true, description: 'a full health report at least this often' }),
    minGapS: Type.Integer({ minimum: 1, maximum: 3600, default: 10, 'x-remote': true, description: 'a changed health report at most this often' }),
    tempDeltaC: Type.Number({ minimum: 0, default: 3, 'x-remote': true, description: 'a temperature change smaller than this is not news' }),
  },
  { additionalProperties: false, default: {} },
);

export const JobsSchema = Type.Object(
  {
    progressIntervalMs: Type.Integer({ minimum: 100, default: 1000, 'x-remote': true, description: 'minimum gap between progress updates of a job' }),
    maxAttempts: Type.Integer({ minimum: 1, maximum: 5, default: 2, description: 'runs of a job the agent died under before it ends FAILED' }),
    defaultTimeoutS: Type.Number({ exclusiveMinimum: 0, default: 21600, 'x-remote': true, description: 'for jobs that name no timeoutS' }),
    abortGraceS: Type.Number({ exclusiveMinimum: 0, default: 10, description: 'how long a canceled job may take to stop' }),
  },
  { additionalProperties: false, default: {} },
);

export const DeploySchema = Type.Object(
  {
    publicKey: PathField('ed25519 public key (PEM); when set, every deploy must carry a valid signature'),
    requireSignature: Type.Boolean({ default: false, description: 'refuse unsigned deploys even without a key (then every deploy fails)' }),
    maxModelBytes: Type.Integer({ minimum: 1024, default: 1073741824 }),
    downloadTimeoutS: Type.Integer({ minimum: 1, default: 600, description: 'an HTTP download that stalls this long fails' }),
    allowHttp: Type.Boolean({ default: false, description: 'allow plain http:// URLs (the sha256 still protects the content)' }),
    benchMaxS: Type.Number({ exclusiveMinimum: 0, default: 20, description: 'time limit of the benchmark before activation' }),
  },
  { additionalProperties: false, default: {} },
);

export const ConfigSchema = Type.Object(
  {
    v: Type.Literal(1, { default: 1 }),
    fleet: TopicLevel({ default: 'default' }),
    deviceId: Type.Optional(TopicLevel({ description: 'defaults to the hostname, made topic-safe' })),
    groups: Type.Array(TopicLevel(), {
      default: [],
      'x-remote': true,
      description: 'also take jobs from edgetune/{fleet}/group/{group}/jobs/+',
    }),
    broker: BrokerSchema,
    stateDir: Type.String({ minLength: 1, default: '.edgetune-state', 'x-path': true }),
    defaultJob: DefaultJobSchema,
    heartbeat: HeartbeatSchema,
    jobs: JobsSchema,
    deploy: DeploySchema,
    limits: Type.Object(
      {
        maxPayloadBytes: Type.Integer({ minimum: 1024, default: 262144 }),
        maxQueuedJobs: Type.Integer({ minimum: 1, default: 32 }),
        rememberJobIds: Type.Integer({ minimum: 16, default: 1000, description: 'seen job ids kept to refuse re-runs' }),
        maxOutbox: Type.Integer({ minimum: 16, default: 10000, description: 'unacknowledged outgoing messages kept on disk' }),
      },
      { additionalProperties: false, default: {} },
    ),
    log: Type.Object(
      { level: Type.Union([Type.Literal('debug'), Type.Literal('info'), Type.Literal('warn'), Type.Literal('error')], { default: 'info' }) },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false },
);

export type Config = Static<typeof ConfigSchema>;
export type BrokerConfig = Static<typeof BrokerSchema>;
export type TlsConfig = Static<typeof TlsSchema>;
export type DeployConfig = Static<typeof DeploySchema>;
export type JobsConfig = Static<typeof JobsSchema>;
export type HeartbeatConfig = Static<typeof HeartbeatSchema>;
