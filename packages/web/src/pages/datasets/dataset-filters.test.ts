import { describe, expect, it } from 'vitest';
import { qs } from '../../api.ts';
import { EMPTY_FILTERS, facetTitle, filtersFromSearch, filtersToBody, filtersToQuery, isFiltered, isTagFilter, sortParams, withFacetToggled, type Filters } from './dataset-filters.ts';

const narrowed: Filters = {
  q: '  lung ',
  dataset: 'lung-ct',
  modality: ['CT', 'MR'],
  body_part: ['CHEST'],
  manufacturer: [],
  study_date_from: '2020-01-01',
  study_date_to: '',
  tags: ['SliceThickness=1.25', 'ImageComments=a=b'],
  sort: 'study_date:asc',
};

describe('the Datasets filters', () => {
  it('open on the dataset the URL names, else on nothing', () => {
    expect(filtersFromSearch('?dataset=lung-ct')).toEqual({ ...EMPTY_FILTERS, dataset: 'lung-ct' });
    expect(filtersFromSearch('?other=1')).toEqual(EMPTY_FILTERS);
    expect(filtersFromSearch('')).toEqual(EMPTY_FILTERS);
  });

  it('become the query string of GET /api/series: lists comma-joined, tags repeated, empty values left out', () => {
    expect(qs(filtersToQuery(narrowed, 'admin'))).toBe(
      '?project=admin&q=lung&dataset=lung-ct&modality=CT%2CMR&body_part=CHEST&study_date_from=2020-01-01&tag=SliceThickness%3D1.25&tag=ImageComments%3Da%3Db',
    );
    expect(qs(filtersToQuery(EMPTY_FILTERS, 'admin'))).toBe('?project=admin');
  });

  it('become the query body of POST /api/datasets: only what is set, tags split at the first =', () => {
    expect(filtersToBody(narrowed)).toEqual({
      dataset: 'lung-ct',
      modality: ['CT', 'MR'],
      body_part: ['CHEST'],
      study_date_from: '2020-01-01',
      q: 'lung',
      tags: { SliceThickness: '1.25', ImageComments: 'a=b' },
    });
    expect(filtersToBody({ ...EMPTY_FILTERS, q: '   ' })).toEqual({});
  });

  it('split the sort into column and order', () => {
    expect(sortParams('created_at:desc')).toEqual({ sort: 'created_at', order: 'desc' });
    expect(sortParams(narrowed.sort)).toEqual({ sort: 'study_date', order: 'asc' });
  });

  it('tick a facet value, and untick it the second time', () => {
    const once = withFacetToggled(EMPTY_FILTERS, 'modality', 'CT');
    expect(once.modality).toEqual(['CT']);
    expect(withFacetToggled(once, 'modality', 'CT').modality).toEqual([]);
    expect(withFacetToggled(narrowed, 'modality', 'US').modality).toEqual(['CT', 'MR', 'US']);
    expect(EMPTY_FILTERS.modality).toEqual([]);
  });

  it('take tag filters of the shape Keyword=value only', () => {
    expect(isTagFilter('SliceThickness=1.25')).toBe(true);
    expect(isTagFilter('PatientAge=*Y')).toBe(true);
    expect(isTagFilter('SliceThickness')).toBe(false);
    expect(isTagFilter('=1.25')).toBe(false);
    expect(isTagFilter('Slice Thickness=1')).toBe(false);
  });

  it('tell a narrowed query from the whole project', () => {
    expect(isFiltered(filtersToQuery(EMPTY_FILTERS, 'admin'), 'admin')).toBe(false);
    expect(isFiltered(filtersToQuery({ ...EMPTY_FILTERS, tags: ['A=1'] }, 'admin'), 'admin')).toBe(true);
    expect(isFiltered(filtersToQuery({ ...EMPTY_FILTERS, modality: ['CT'] }, 'admin'), 'admin')).toBe(true);
  });

  it('name the facets as the sidebar heads them', () => {
    expect(facetTitle('modality')).toBe('Modality');
    expect(facetTitle('body_part')).toBe('Body part');
    expect(facetTitle('manufacturer')).toBe('Manufacturer');
  });
});
