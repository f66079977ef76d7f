/** htm bound to Preact's h: JSX-like templates without a compile step of their own. */
import htm from "htm";
import { h, type VNode } from "preact";

export const html = htm.bind(h) as (strings: TemplateStringsArray, ...values: unknown[]) => VNode;
