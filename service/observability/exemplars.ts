import { Registry, type RegistryContentType } from 'prom-client';

export interface RenderedMetrics {
  contentType: string;
  body: string;
}

const OPENMETRICS = 'application/openmetrics-text';

/**
 * Prometheus text by default; OpenMetrics, which alone carries the latency exemplars (trace ids),
 * when the scraper asks for it (Prometheus does, first, in its Accept header).
 *
 * prom-client renders one format per registry and, for OpenMetrics, renames counters in place
 * (drops `_total`). So an OpenMetrics render switches the format, then puts the format and the
 * names back; renders run one at a time, so no Prometheus-format scrape sees the switch.
 */
export function metricsRenderer(registry: Registry<RegistryContentType>): (accept: string | undefined) => Promise<RenderedMetrics> {
  let previous: Promise<unknown> = Promise.resolve();
  const render = async (openMetrics: boolean): Promise<RenderedMetrics> => {
    if (!openMetrics) return { contentType: registry.contentType, body: await registry.metrics() };
    const names = registry.getMetricsAsArray().map((metric) => [metric, metric.name] as const);
    registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
    try {
      return { contentType: registry.contentType, body: await registry.metrics() };
    } finally {
      registry.setContentType(Registry.PROMETHEUS_CONTENT_TYPE);
      for (const [metric, name] of names) metric.name = name;
    }
  };
  return (accept) => {
    const result = previous.then(() => render(accept?.includes(OPENMETRICS) ?? false));
    previous = result.catch(() => undefined);
    return result;
  };
}
