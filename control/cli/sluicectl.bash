# bash completion for sluicectl. Installed as
# share/bash-completion/completions/sluicectl; to try it: source sluicectl.bash
#
# Completes commands, their options and option values, and interface names
# (from /sys/class/net) where a command takes one.

_sluicectl() {
    local cur prev words cword
    _init_completion || return

    local commands="status attach detach config stats events capture shutdown apply"
    local globals="--socket --json --timeout --help"

    # Option values first: they do not depend on the command.
    case "$prev" in
        --socket)
            _filedir
            return ;;
        --mode)
            COMPREPLY=($(compgen -W "native skb" -- "$cur"))
            return ;;
        --default-verdict|--tail-call-fail|--malformed|--non-ip)
            COMPREPLY=($(compgen -W "pass drop" -- "$cur"))
            return ;;
        --drop-fragments)
            COMPREPLY=($(compgen -W "on off" -- "$cur"))
            return ;;
        --stages)
            # Comma-separated: complete the word after the last comma.
            local done_part="${cur%"${cur##*,}"}"
            COMPREPLY=($(compgen -P "$done_part" -W "filter lb forward none" -- "${cur##*,}"))
            compopt -o nospace
            return ;;
        -w|--write)
            _filedir pcap
            return ;;
        -f|--file)
            _filedir '@(yaml|yml)'
            return ;;
        --timeout|--watch|-c|--count)
            return ;;
    esac

    # The command (and config's subcommand) is the first non-option word.
    local command="" subcommand="" i
    for ((i = 1; i < cword; i++)); do
        case "${words[i]}" in
            --socket|--timeout) ((i++)) ;;
            -*) ;;
            *)
                if [[ -z $command ]]; then
                    command="${words[i]}"
                elif [[ $command == config && -z $subcommand ]]; then
                    subcommand="${words[i]}"
                fi ;;
        esac
    done

    case "$command" in
        "")
            COMPREPLY=($(compgen -W "$commands $globals" -- "$cur")) ;;
        attach|detach)
            if [[ $cur == -* ]]; then
                [[ $command == attach ]] && COMPREPLY=($(compgen -W "--mode $globals" -- "$cur"))
                [[ $command == detach ]] && COMPREPLY=($(compgen -W "$globals" -- "$cur"))
            else
                COMPREPLY=($(compgen -W "$(ls /sys/class/net 2>/dev/null)" -- "$cur"))
            fi ;;
        config)
            case "$subcommand" in
                "") COMPREPLY=($(compgen -W "get set show" -- "$cur")) ;;
                set) COMPREPLY=($(compgen -W "--default-verdict --tail-call-fail --malformed --non-ip --drop-fragments --stages $globals" -- "$cur")) ;;
                *) COMPREPLY=($(compgen -W "$globals" -- "$cur")) ;;
            esac ;;
        stats)
            COMPREPLY=($(compgen -W "--watch $globals" -- "$cur")) ;;
        events)
            COMPREPLY=($(compgen -W "--follow -c --count $globals" -- "$cur")) ;;
        capture)
            COMPREPLY=($(compgen -W "-w --write -c --count $globals" -- "$cur")) ;;
        shutdown)
            COMPREPLY=($(compgen -W "--detach $globals" -- "$cur")) ;;
        apply)
            COMPREPLY=($(compgen -W "-f --file --dry-run $globals" -- "$cur")) ;;
        *)
            COMPREPLY=($(compgen -W "$globals" -- "$cur")) ;;
    esac
}

complete -F _sluicectl sluicectl
