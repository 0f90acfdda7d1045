import { describe, expect, it } from 'vitest';
import { isDicomUid, parseDockerHost, seriesIdsOf } from './index.ts';

describe('facts shared by the packages', () => {
  it('tells DICOM UIDs from other strings', () => {
    expect(isDicomUid('1.2.840.10008.1.2')).toBe(true);
    expect(isDicomUid('1.2.')).toBe(false);
    expect(isDicomUid('1.02a')).toBe(false);
    // PS3.5 9.1: no component starts with 0, except the component 0 itself.
    expect(isDicomUid('01.2.3')).toBe(false);
    expect(isDicomUid('1.2.03')).toBe(false);
    expect(isDicomUid('1.0.3')).toBe(true);
    expect(isDicomUid(`1.${'2'.repeat(63)}`)).toBe(false);
    expect(isDicomUid(12)).toBe(false);
  });

  it('reads DOCKER_HOST the same way everywhere', () => {
    expect(parseDockerHost(undefined)).toEqual({ socketPath: '/var/run/docker.sock' });
    expect(parseDockerHost('unix:///tmp/d.sock')).toEqual({ socketPath: '/tmp/d.sock' });
    expect(parseDockerHost('tcp://1.2.3.4:2375').problem).toMatch(/only unix:\/\/ sockets/);
  });

  it('takes the series a data_form names', () => {
    expect(seriesIdsOf({ identifiers: ['1.2', 3, '1.3'] })).toEqual(['1.2', '1.3']);
    expect(seriesIdsOf({ dataset_name: 'x' })).toEqual([]);
    expect(seriesIdsOf(undefined)).toEqual([]);
  });
});
