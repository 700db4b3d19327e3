#!/usr/bin/env node
// Lints Cypher statements with Neo4j's own front end (@neo4j-cypher/language-support).
//
// stdin: {"statements": [{"text": "...", "params": {...}}], "labels": [...],
//         "relationshipTypes": [...]}
// stdout: [{"index": 0, "diagnostics": [{"severity": 1, "message": "...", "offsets": {...}}]}]
// Each statement is checked with exactly its own parameters declared, so an undeclared
// or misspelled parameter is a diagnostic, as are unknown labels and relationship types.
import { lintCypherQuery } from '@neo4j-cypher/language-support';

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

const input = JSON.parse(await readStdin());
const results = input.statements.map((statement, index) => {
  const schema = {
    parameters: statement.params ?? {},
    labels: input.labels ?? [],
    relationshipTypes: input.relationshipTypes ?? [],
  };
  const { diagnostics } = lintCypherQuery(statement.text, schema, {
    consoleCommandsEnabled: false,
  });
  return {
    index,
    diagnostics: diagnostics.map((d) => ({
      severity: d.severity,
      message: d.message,
      offsets: d.offsets,
    })),
  };
});
process.stdout.write(JSON.stringify(results));
