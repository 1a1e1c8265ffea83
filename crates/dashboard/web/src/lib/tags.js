// A project's tags are objects (`/projects/{id}/tags/`, as Flagsmith serves them) and features
// carry their ids. People type tag names, comma-separated: these helpers turn ids into names
// for display and names into ids for saving, creating the tags that do not exist yet.
import { get, post } from './api.js';

/** The colour a tag made from a typed name gets. */
const NEW_TAG_COLOR = '#3d4db6';

/** Every tag of the project (one page of up to 1,000, the project's limit). */
export async function loadTags(project) {
  return (await get(`/projects/${project}/tags/?page_size=1000`)).results;
}

/** The labels of these tag ids, in the order given (unknown ids are left out). */
export function tagLabels(ids, tags) {
  const byId = new Map((tags || []).map((t) => [t.id, t.label]));
  return ids.map((id) => byId.get(id)).filter((l) => l !== undefined);
}

/** The ids for comma-separated names; names with no tag yet get one. */
export async function tagIdsFor(project, text, tags) {
  const names = [...new Set(text.split(',').map((t) => t.trim()).filter(Boolean))];
  const ids = [];
  for (const name of names) {
    const known = (tags || []).find((t) => t.label === name);
    ids.push(known ? known.id : (await post(`/projects/${project}/tags/`, { label: name, color: NEW_TAG_COLOR })).id);
  }
  return ids;
}
