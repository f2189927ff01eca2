import { expect } from 'chai';
import { ConfigError, loadConfig } from '../../service/config.js';

describe('tracing configuration (OpenTelemetry environment variables)', () => {
  const tracing = (env: Record<string, string>) => loadConfig(env).tracing;

  it('is off without an OTLP endpoint', () => {
    expect(tracing({}).endpoint).to.equal(undefined);
  });

  it('sends to <OTEL_EXPORTER_OTLP_ENDPOINT>/v1/traces, and uses a traces-specific endpoint as given', () => {
    expect(tracing({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }).endpoint).to.equal('http://collector:4318/v1/traces');
    expect(tracing({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:4318/custom' }).endpoint).to.equal('http://b:4318/custom');
  });

  it('stays off when OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none, endpoint or not', () => {
    expect(tracing({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' }).endpoint).to.equal(undefined);
    expect(tracing({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' }).endpoint).to.equal(undefined);
  });

  it('defaults to http/protobuf, parent-based always-on sampling and the service name users-service', () => {
    expect(tracing({})).to.deep.include({ protocol: 'http/protobuf', sampler: 'parentbased_always_on', ratio: 1, serviceName: 'users-service' });
  });

  it('reads parent-based ratio sampling', () => {
    expect(tracing({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.1' })).to.deep.include({ sampler: 'parentbased_traceidratio', ratio: 0.1 });
  });

  it('reads resource attributes, percent-decoded', () => {
    expect(tracing({ OTEL_RESOURCE_ATTRIBUTES: 'k8s.pod.name=users-1,service.version=1.2.3,note=a%20b' }).resourceAttributes)
      .to.deep.equal({ 'k8s.pod.name': 'users-1', 'service.version': '1.2.3', note: 'a b' });
  });

  it('refuses, naming the variable, what it cannot honour', () => {
    const bad: Record<string, string>[] = [
      { OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' },
      { OTEL_TRACES_SAMPLER: 'sometimes' },
      { OTEL_TRACES_SAMPLER_ARG: '1.5' },
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' },
      { OTEL_BSP_MAX_QUEUE_SIZE: '0' },
      { OTEL_TRACES_EXPORTER: 'zipkin' },
    ];
    for (const env of bad) {
      const [name] = Object.keys(env) as [string];
      expect(() => loadConfig(env), name).to.throw(ConfigError, name);
    }
  });

  it('never echoes an endpoint it refuses (it may carry credentials)', () => {
    expect(() => loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'ftp://user:s3cret@host' })).to.throw(ConfigError).that.satisfies((err: Error) => !err.message.includes('s3cret'));
  });
});
