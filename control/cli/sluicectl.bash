# bash completion for sluicectl. Installed as
# share/bash-completion/completions/sluicectl; to try it: source sluicectl.bash
#
# Completes commands, their options and option values (verdicts, protocols,
# TCP flags, filter actions, lb egress modes), interface names (from /sys/class/net) where a
# command takes one, and files for block load.

_sluicectl() {
    local cur prev words cword
    _init_completion || return

    local commands="status attach detach config stats top doctor events capture shutdown apply block rule filter limit conn vip backend lb route nexthop cpumap forward"
    local globals="--socket --json --timeout --help"

    # Option values first: they do not depend on the command.
    case "$prev" in
        --socket)
            _filedir
            return ;;
        --mode)
            COMPREPLY=($(compgen -W "native skb" -- "$cur"))
            return ;;
        --end-verdict|--tail-call-fail|--malformed|--non-ip)
            COMPREPLY=($(compgen -W "pass drop" -- "$cur"))
            return ;;
        --drop-fragments|--entropy)
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
        --egress)
            COMPREPLY=($(compgen -W "tx redirect forward" -- "$cur"))
            return ;;
        --check)
            COMPREPLY=($(compgen -W "tcp: http:" -- "$cur"))
            compopt -o nospace
            return ;;
        --table-size|--weight|--mac|--encap-source|--next-hop-mac|--src-mac|--mtu|--conn-timeout|--check-interval-ms|--check-timeout-ms|--check-rise|--check-fall)
            return ;;
        --proto)
            COMPREPLY=($(compgen -W "tcp udp icmp icmpv6" -- "$cur"))
            return ;;
        --iface)
            COMPREPLY=($(compgen -W "$(ls /sys/class/net 2>/dev/null)" -- "$cur"))
            return ;;
        --tcp-flags)
            # Comma-separated, each optionally negated with '!'.
            local done_part="${cur%"${cur##*,}"}" flags="" f
            for f in fin syn rst psh ack urg ece cwr; do flags+="$f !$f "; done
            COMPREPLY=($(compgen -P "$done_part" -W "$flags" -- "${cur##*,}"))
            compopt -o nospace
            return ;;
        --action)
            # rule add: drop pass track limit:CLASS; block add: no track; block load: drop pass.
            local actions="drop pass track limit:"
            local w
            for w in "${words[@]}"; do
                [[ $w == block ]] && actions="drop pass limit:"
                [[ $w == load ]] && actions="drop pass"
            done
            COMPREPLY=($(compgen -W "$actions" -- "$cur"))
            [[ ${COMPREPLY[0]} == limit: ]] && compopt -o nospace
            return ;;
        --timeout|--watch|-c|--count|--priority|--src|--dst|--sport|--dport|--icmp-type|--pps|--bps|--burst|--limit|--v4-prefix-len|--v6-prefix-len|--aggregate-pps|--aggregate-bps|--aggregate-burst)
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
                elif [[ $command == @(config|block|rule|limit|conn|vip|backend|lb|route|nexthop|cpumap|forward) && -z $subcommand ]]; then
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
                set) COMPREPLY=($(compgen -W "--end-verdict --tail-call-fail --malformed --non-ip --drop-fragments --stages --drop-sample-every $globals" -- "$cur")) ;;
                *) COMPREPLY=($(compgen -W "$globals" -- "$cur")) ;;
            esac ;;
        block)
            case "$subcommand" in
                "") COMPREPLY=($(compgen -W "add del load list" -- "$cur")) ;;
                add) COMPREPLY=($(compgen -W "--action $globals" -- "$cur")) ;;
                load)
                    if [[ $cur == -* ]]; then
                        COMPREPLY=($(compgen -W "--action $globals" -- "$cur"))
                    else
                        _filedir
                    fi ;;
                *) COMPREPLY=($(compgen -W "$globals" -- "$cur")) ;;
            esac ;;
        rule)
            case "$subcommand" in
                "") COMPREPLY=($(compgen -W "add del list" -- "$cur")) ;;
                add) COMPREPLY=($(compgen -W "--priority --src --dst --proto --sport --dport --tcp-flags --icmp-type --iface --action $globals" -- "$cur")) ;;
                *) COMPREPLY=($(compgen -W "$globals" -- "$cur")) ;;
            esac ;;
        filter)
            case "$subcommand" in
                "") COMPREPLY=($(compgen -W "policy" -- "$cur")) ;;
                policy) COMPREPLY=($(compgen -W "drop pass $globals" -- "$cur")) ;;
                *) COMPREPLY=($(compgen -W "$globals" -- "$cur")) ;;
            esac ;;
        limit)
            case "$subcommand" in
                "") COMPREPLY=($(compgen -W "set del list" -- "$cur")) ;;
                set) COMPREPLY=($(compgen -W "--pps --bps --burst --syn-only --v4-prefix-len --v6-prefix-len --aggregate-pps --aggregate-bps --aggregate-burst $globals" -- "$cur")) ;;
                *) COMPREPLY=($(compgen -W "$globals" -- "$cur")) ;;
            esac ;;
        conn)
            case "$subcommand" in
                "") COMPREPLY=($(compgen -W "list" -- "$cur")) ;;
                list) COMPREPLY=($(compgen -W "--limit $globals" -- "$cur")) ;;
                *) COMPREPLY=($(compgen -W "$globals" -- "$cur")) ;;
            esac ;;
        vip)
            case "$subcommand" in
                "") COMPREPLY=($(compgen -W "add del list" -- "$cur")) ;;
                add) COMPREPLY=($(compgen -W "--table-size --l2 --check --check-interval-ms --check-timeout-ms --check-rise --check-fall $globals" -- "$cur")) ;;
                *) COMPREPLY=($(compgen -W "$globals" -- "$cur")) ;;
            esac ;;
        backend)
            case "$subcommand" in
                "") COMPREPLY=($(compgen -W "add set drain del list" -- "$cur")) ;;
                add) COMPREPLY=($(compgen -W "--weight --mac $globals" -- "$cur")) ;;
                set) COMPREPLY=($(compgen -W "--weight $globals" -- "$cur")) ;;
                *) COMPREPLY=($(compgen -W "$globals" -- "$cur")) ;;
            esac ;;
        lb)
            case "$subcommand" in
                "") COMPREPLY=($(compgen -W "set show" -- "$cur")) ;;
                set) COMPREPLY=($(compgen -W "--encap-source --entropy --egress --next-hop-mac --src-mac --mtu --conn-timeout $globals" -- "$cur")) ;;
                *) COMPREPLY=($(compgen -W "$globals" -- "$cur")) ;;
            esac ;;
        route)
            case "$subcommand" in
                "") COMPREPLY=($(compgen -W "add replace del list sync" -- "$cur")) ;;
                add|replace) COMPREPLY=($(compgen -W "--via --dev --mac --src-mac --group --to-stack $globals" -- "$cur")) ;;
                sync) COMPREPLY=($(compgen -W "on off --table $globals" -- "$cur")) ;;
                *) COMPREPLY=($(compgen -W "$globals" -- "$cur")) ;;
            esac ;;
        nexthop)
            case "$subcommand" in
                "") COMPREPLY=($(compgen -W "list group" -- "$cur")) ;;
                group) COMPREPLY=($(compgen -W "add replace del list --via --dev --mac --src-mac --weight $globals" -- "$cur")) ;;
                *) COMPREPLY=($(compgen -W "$globals" -- "$cur")) ;;
            esac ;;
        cpumap)
            case "$subcommand" in
                "") COMPREPLY=($(compgen -W "set" -- "$cur")) ;;
                set) COMPREPLY=($(compgen -W "--cpus --queue $globals" -- "$cur")) ;;
                *) COMPREPLY=($(compgen -W "$globals" -- "$cur")) ;;
            esac ;;
        forward)
            case "$subcommand" in
                "") COMPREPLY=($(compgen -W "set show" -- "$cur")) ;;
                set) COMPREPLY=($(compgen -W "--no-route --icmp-rate --icmp-burst --icmp-source $globals" -- "$cur")) ;;
                *) COMPREPLY=($(compgen -W "$globals" -- "$cur")) ;;
            esac ;;
        stats)
            COMPREPLY=($(compgen -W "--watch $globals" -- "$cur")) ;;
        doctor)
            COMPREPLY=($(compgen -W "--json $globals" -- "$cur")) ;;
        top)
            COMPREPLY=($(compgen -W "--interval --iterations $globals" -- "$cur")) ;;
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
