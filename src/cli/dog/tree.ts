// dog/treeview.c: the `dog vdi tree` renderer (snapshot chains of one name, branches drawn with
// -+-, |- and `-), kept separate so it can be unit tested without a cluster.

import { cLen } from './common.js';

export const TEXT_BOLD = '\x1b[1m';
export const TEXT_NORMAL = '\x1b[0m';

interface VdiTreeNode {
  name: string;
  label: string;
  vid: number;
  pvid: number;
  highlight: boolean;
  children: VdiTreeNode[];
}

export class VdiTree {
  private root: VdiTreeNode = { name: '', label: '', vid: 0, pvid: 0, highlight: false, children: [] };

  private find(parent: VdiTreeNode, vid: number, name: string): VdiTreeNode | null {
    for (const v of parent.children) {
      if (v.vid === vid && v.name === name) return v;
      const r = this.find(v, vid, name);
      if (r) return r;
    }
    return null;
  }

  findFromRoot(vid: number, name: string): { pvid: number; children: number } | null {
    const v = this.find(this.root, vid, name);
    return v ? { pvid: v.pvid, children: v.children.length } : null;
  }

  /** add_vdi_tree() */
  add(name: string, label: string, vid: number, pvid: number, highlight: boolean): void {
    const v: VdiTreeNode = { name, label, vid, pvid, highlight, children: [] };
    const parent = this.find(this.root, pvid, name) ?? this.root;
    parent.children.push(v);
  }

  private compaction(parent: VdiTreeNode): void {
    for (const v of [...parent.children]) {
      const np = this.find(this.root, v.pvid, v.name);
      if (np && np !== parent && np !== v) {
        parent.children.splice(parent.children.indexOf(v), 1);
        np.children.push(v);
      }
      this.compaction(v);
    }
  }

  /** dump_tree(): the whole forest as text */
  dump(): string {
    this.compaction(this.root);
    const width: number[] = [];
    const more: boolean[] = [];
    let s = '';
    const indent = (level: number, first: boolean, last: boolean) => {
      if (first) s += last ? '---' : '-+-';
      else {
        for (let lvl = 0; lvl < level - 1; lvl++) {
          s += ' '.repeat(width[lvl]! + 1);
          s += more[lvl + 1] ? '| ' : '  ';
        }
        s += ' '.repeat(width[level - 1]! + 1);
        s += last ? '`-' : '|-';
      }
    };
    const dumpNode = (cur: VdiTreeNode, level: number, first: boolean, last: boolean) => {
      indent(level, first, last);
      if (cur.highlight) s += TEXT_BOLD;
      s += cur.label;
      if (cur.highlight) s += TEXT_NORMAL;
      if (cur.children.length === 0) {
        s += '\n';
        return;
      }
      more[level] = !last;
      width[level] = cLen(cur.label);
      cur.children.forEach((c, i) => dumpNode(c, level + 1, i === 0, i === cur.children.length - 1));
    };
    for (const v of this.root.children) {
      s += v.name;
      more[0] = false;
      width[0] = cLen(v.name);
      dumpNode(v, 1, true, true);
    }
    return s;
  }
}
