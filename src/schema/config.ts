import { Type, type Static } from '@sinclair/typebox';

// The agent's configuration: this one schema gives the type, the defaults and the environment overrides
// (src/agent/config.ts derives EDGETUNE_* names from it). Fields marked `x-path` are filesystem paths that
// loadConfig resolves (see the rule there).

/** Ids that end up as MQTT topic levels: no '/', '+', '#', spaces. */
export const TOPIC_LEVEL_PATTERN = '^[A-Za-z0-9._-]{1,64}$';
const TopicLevel = (opts: Record<string, unknown> = {}) => Type.String({ pattern: TOPIC_LEVEL_PATTERN, ...opts });

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
    protocolVersion: Type.Union([Type.Literal(4), Type.Literal(5)], {
      default: 4,
      description: '4 = MQTT 3.1.1 (the embedded broker speaks only this), 5 = MQTT 5 (response topics honoured)',
    }),
    keepaliveS: Type.Integer({ minimum: 5, maximum: 3600, default: 30 }),
    reconnect: Type.Object(
      {
        minMs: Type.Integer({ minimum: 10, default: 1000 }),
        maxMs: Type.Integer({ minimum: 10, default: 60000 }),
      },
      { additionalProperties: false, default: {} },
    ),
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

export const ConfigSchema = Type.Object(
  {
    v: Type.Literal(1, { default: 1 }),
    fleet: TopicLevel({ default: 'default' }),
    deviceId: Type.Optional(TopicLevel({ description: 'defaults to the hostname, made topic-safe' })),
    groups: Type.Array(TopicLevel(), {
      default: [],
      description: 'also take jobs from edgetune/{fleet}/group/{group}/jobs/+',
    }),
    broker: BrokerSchema,
    stateDir: Type.String({ minLength: 1, default: '.edgetune-state', 'x-path': true }),
    defaultJob: DefaultJobSchema,
    limits: Type.Object(
      {
        maxPayloadBytes: Type.Integer({ minimum: 1024, default: 262144 }),
        maxQueuedJobs: Type.Integer({ minimum: 1, default: 32 }),
        rememberJobIds: Type.Integer({ minimum: 16, default: 1000, description: 'seen job ids kept to refuse re-runs' }),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false },
);

export type Config = Static<typeof ConfigSchema>;
export type BrokerConfig = Static<typeof BrokerSchema>;
