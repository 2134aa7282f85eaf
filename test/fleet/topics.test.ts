import t from 'tap';
import { fleetTopics, parseFleetTopic, sharedFilter } from '../../src/fleet/topics.js';
import { topicMatches } from '../../src/agent/topics.js';

t.test('concrete topics parse back to device, kind and job id; anything else is not ours', async (t) => {
  t.same(parseFleetTopic('f', 'edgetune/f/dev1/status'), { device: 'dev1', kind: 'status' });
  t.same(parseFleetTopic('f', 'edgetune/f/dev1/deployed'), { device: 'dev1', kind: 'deployed' });
  t.same(parseFleetTopic('f', 'edgetune/f/dev1/jobs/j1/result'), { device: 'dev1', kind: 'jobResult', jobId: 'j1' });
  t.same(parseFleetTopic('f', 'edgetune/f/dev1/jobs/j1/status'), { device: 'dev1', kind: 'jobStatus', jobId: 'j1' });
  t.equal(parseFleetTopic('f', 'edgetune/f/dev1/jobs/j1'), undefined, 'a job document is not a reply');
  t.equal(parseFleetTopic('f', 'edgetune/g/dev1/status'), undefined, 'another fleet');
  t.equal(parseFleetTopic('f', 'edgetune/f/all/jobs/j1/status'), undefined, '"all" is not a device');
  t.equal(parseFleetTopic('f', 'edgetune/f/group/status'), undefined, '"group" is not a device');
  t.equal(parseFleetTopic('f', 'edgetune/f/dev1/other'), undefined);
});

t.test('filters match what devices publish and not the job documents sent to them', async (t) => {
  t.ok(topicMatches(fleetTopics.jobReplies('f'), 'edgetune/f/d/jobs/j/status'));
  t.ok(topicMatches(fleetTopics.jobReplies('f'), 'edgetune/f/d/jobs/j/result'));
  t.notOk(topicMatches(fleetTopics.jobReplies('f'), 'edgetune/f/d/jobs/j'));
  t.ok(topicMatches(fleetTopics.retained('f', 'profile'), 'edgetune/f/d/profile'));
  t.equal(fleetTopics.deviceJob('f', 'd', 'j'), 'edgetune/f/d/jobs/j');
});

t.test('shared subscriptions put the group in front; a bad group name is refused', async (t) => {
  t.equal(sharedFilter('edgetune', fleetTopics.jobResults('f')), '$share/edgetune/edgetune/f/+/jobs/+/result');
  t.throws(() => sharedFilter('a/b', 'x'), /one topic level/);
});
