import { invoiceMemo, OTHER_SERVICE, serviceOfMemo } from '../../src/core/memo';

describe('invoice memo', () => {
  const services = new Set(['weather', 'inference']);

  it('names the service and the route', () => {
    expect(invoiceMemo('weather', 'forecast')).toBe('weather: forecast');
  });

  it('attributes a memo Plannt wrote to its service', () => {
    expect(serviceOfMemo(invoiceMemo('weather', 'forecast'), services)).toBe('weather');
    expect(serviceOfMemo(invoiceMemo('inference', 'v1/generate:large'), services)).toBe('inference');
  });

  it('counts any other memo as other, so the label set stays bounded', () => {
    for (const memo of [
      '',
      'coffee',
      'weather',
      'weather:forecast',
      'radio: news',
      'Weather: forecast',
      'weather: ',
    ]) {
      expect(serviceOfMemo(memo, services)).toBe(OTHER_SERVICE);
    }
  });
});
