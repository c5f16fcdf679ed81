import { DatasetError } from '../../errors.js';

/** Image scores read from a CSV file with header `id,score,label` (label 1 = anomalous). */
export interface ScoresTable {
  readonly ids: string[];
  readonly scores: Float64Array;
  readonly labels: Uint8Array;
}

interface Row {
  readonly line: number;
  readonly fields: string[];
}

/**
 * Minimal RFC 4180 reader: comma separator, fields optionally in double quotes with "" as an
 * escaped quote (so ids may contain commas), LF or CRLF line ends, blank lines skipped.
 * Each row keeps the 1-based line it starts on for error messages.
 */
function parseRows(text: string, file: string): Row[] {
  const rows: Row[] = [];
  let fields: string[] = [];
  let field = '';
  let quoted = false;
  let line = 1;
  let rowLine = 1;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0; // UTF-8 BOM written by Excel
  const endRow = (): void => {
    fields.push(field);
    if (!(fields.length === 1 && fields[0].trim() === '')) rows.push({ line: rowLine, fields });
    fields = [];
    field = '';
  };
  for (; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else {
        if (ch === '\n') line++;
        field += ch;
      }
    } else if (ch === '"' && field.trim() === '') {
      field = '';
      quoted = true;
    } else if (ch === ',') {
      fields.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      endRow();
      line++;
      rowLine = line;
    } else field += ch;
  }
  if (quoted) throw new DatasetError(`${file}:${rowLine}: unterminated quoted field`);
  endRow();
  return rows;
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/**
 * Parses the text of a scores CSV. `file` is only used in messages. Columns are found by header
 * name (case-insensitive, any order, extra columns ignored). Throws DatasetError naming file and
 * line for a missing column, wrong field count, non-numeric/non-finite score, label other than
 * 0/1, duplicate id or an empty table.
 */
export function parseScoresCsv(text: string, file: string): ScoresTable {
  const rows = parseRows(text, file);
  if (rows.length === 0) throw new DatasetError(`${file}: empty file; expected a header 'id,score,label' and rows`);
  const header = rows[0].fields.map((h) => h.trim().toLowerCase());
  const col = (name: string): number => {
    const k = header.indexOf(name);
    if (k < 0) {
      throw new DatasetError(
        `${file}:${rows[0].line}: header has no '${name}' column (got '${rows[0].fields.join(',')}'); expected columns id,score,label`,
      );
    }
    return k;
  };
  const idCol = col('id');
  const scoreCol = col('score');
  const labelCol = col('label');
  const ids: string[] = [];
  const scores: number[] = [];
  const labels: number[] = [];
  const seen = new Map<string, number>();
  for (let r = 1; r < rows.length; r++) {
    const { line, fields } = rows[r];
    const where = `${file}:${line}`;
    if (fields.length !== header.length) {
      throw new DatasetError(`${where}: ${fields.length} fields but the header has ${header.length}`);
    }
    const id = fields[idCol].trim();
    const prev = seen.get(id);
    if (prev !== undefined) throw new DatasetError(`${where}: id '${id}' already appears on line ${prev}`);
    seen.set(id, line);
    const s = fields[scoreCol].trim();
    if (!NUMBER.test(s)) throw new DatasetError(`${where}: score '${s}' is not a finite number`);
    const score = Number(s);
    if (!Number.isFinite(score)) throw new DatasetError(`${where}: score '${s}' is not a finite number`);
    const l = fields[labelCol].trim();
    const label = NUMBER.test(l) ? Number(l) : NaN;
    if (label !== 0 && label !== 1) throw new DatasetError(`${where}: label '${l}' must be 0 (normal) or 1 (anomalous)`);
    ids.push(id);
    scores.push(score);
    labels.push(label);
  }
  if (ids.length === 0) throw new DatasetError(`${file}: no data rows after the header`);
  return { ids, scores: Float64Array.from(scores), labels: Uint8Array.from(labels) };
}
