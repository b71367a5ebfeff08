/** `spool completion bash|zsh`: the shell completion script, written from the commands' definitions. */
import { Argument, Command } from 'commander';
import { completionScript, SHELLS, type Shell } from '../completion.js';

export function completionCommand(): Command {
  return new Command('completion')
    .description('print a shell completion script: source <(spool completion bash) in ~/.bashrc, or the zsh one into a file on $fpath named _spool')
    .addArgument(new Argument('<shell>', 'the shell').choices(SHELLS))
    .action(function (this: Command, shell: Shell) {
      process.stdout.write(completionScript(this.parent!, shell));
    });
}
