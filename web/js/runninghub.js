// RunningHub Bridge front end: key settings, the field picker and override checks on
// RH Node Override, live status on RH Run Workflow, the task panel (sidebar), "Run on
// RunningHub" for groups. Written against ComfyUI front end 1.32.
import { api } from "../../../scripts/api.js";
import { app } from "../../../scripts/app.js";
import { attachCheckWidget, scheduleCheck } from "./rh/checks.js";
import { injectStyle } from "./rh/dom.js";
import { OVERRIDE, RUN } from "./rh/graph.js";
import { groupCommands, groupMenuItems, setupGroups, toolboxCommands } from "./rh/group.js";
import { loadStrings, t } from "./rh/i18n.js";
import { openPicker } from "./rh/picker.js";
import { settingsDefinitions } from "./rh/settings.js";
import { attachStatusWidget, onRunExecuted, setupStatus } from "./rh/status.js";
import { registerTaskPanel } from "./rh/tasks.js";
import { restoreTranslations, watchLanguage } from "./rh/translations.js";

function growToFit(node) {
  const wanted = node.computeSize?.();
  if (wanted) node.setSize?.([Math.max(node.size[0], wanted[0]), Math.max(node.size[1], wanted[1])]);
}

function attachPicker(node) {
  const button = node.addWidget("button", "rh_pick", null, () => {
    openPicker(node).then((row) => row && scheduleCheck(0));
  }, { serialize: false });
  button.serialize = false;
  // The label follows the language setting at every redraw.
  Object.defineProperty(button, "label", { get: () => t("picker.button"), set: () => {}, configurable: true });
  return button;
}

app.registerExtension({
  name: "RunningHub.Bridge",
  settings: settingsDefinitions(),

  async init() {
    injectStyle();
    await loadStrings();
    await restoreTranslations();  // before the node types are registered with their names
  },

  async setup() {
    setupStatus();
    registerTaskPanel();
    setupGroups();
    watchLanguage();
    api.addEventListener("graphChanged", () => scheduleCheck());
    scheduleCheck(0);
  },

  commands: groupCommands(),

  // The canvas menu opened on a group: "Run on RunningHub" and the group's account profile.
  getCanvasMenuItems(canvas) {
    return groupMenuItems(canvas);
  },

  // A selected group's toolbox: the same toggle, as a cloud button.
  getSelectionToolboxCommands(item) {
    return toolboxCommands(item);
  },

  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== RUN) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
      onExecuted?.apply(this, arguments);
      onRunExecuted(this, output);
    };
  },

  nodeCreated(node) {
    if (node.comfyClass === OVERRIDE) {
      attachPicker(node);
      attachCheckWidget(node);
      growToFit(node);
    } else if (node.comfyClass === RUN) {
      keepSeedFixed(node);
      attachStatusWidget(node);
      growToFit(node);
    }
  },

  async afterConfigureGraph() {
    scheduleCheck(0);
  },
});

// A new RH Run Workflow starts with its seed control at "fixed": re-queueing the same graph
// then reuses the result instead of running (and billing) again. ComfyUI's default for seed
// controls is "randomize"; choosing it is one click. A loaded workflow keeps its own choice
// (ComfyUI restores saved widget values after nodeCreated).
function keepSeedFixed(node) {
  const control = node.widgets?.find((w) => w.name === "control_after_generate");
  if (control) control.value = "fixed";
}
