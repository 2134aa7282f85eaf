// Topic names (DESIGN.md §5) in one place, and the filter matching the agent needs to route what it receives.

export interface TopicIds {
  fleet: string;
  deviceId: string;
  groups: string[];
}

export function baseTopic(ids: Pick<TopicIds, 'fleet' | 'deviceId'>): string {
  return `edgetune/${ids.fleet}/${ids.deviceId}`;
}

export const topics = {
  status: (base: string) => `${base}/status`,
  profile: (base: string) => `${base}/profile`,
  job: (base: string, id: string) => `${base}/jobs/${id}`,
  jobStatus: (base: string, id: string) => `${base}/jobs/${id}/status`,
  jobResult: (base: string, id: string) => `${base}/jobs/${id}/result`,
  health: (base: string) => `${base}/health`,
  deployed: (base: string) => `${base}/deployed`,
  /** Chunks of a model sent over MQTT (controller → device), raw bytes, index from 0. */
  transferChunk: (base: string, transferId: string, index: number) => `${base}/transfer/${transferId}/${index}`,
};

/** The filters a device takes jobs from: its own, the whole fleet's, and each of its groups'. */
export function jobFilters(ids: TopicIds): string[] {
  return [
    `${baseTopic(ids)}/jobs/+`,
    `edgetune/${ids.fleet}/all/jobs/+`,
    ...ids.groups.map((g) => `edgetune/${ids.fleet}/group/${g}/jobs/+`),
  ];
}

/** MQTT filter matching: `+` is one level, a trailing `#` any number (including none). */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return i === f.length - 1;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}
